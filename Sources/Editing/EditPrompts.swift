import Foundation
import Transformer

/// Training batches built from an edit request's token ids.
enum EditBatches {
    /// FT-L's `prompt_last` objective (as in ROME's FT-L baseline code, Meng et al. 2022): |target| copies of the prompt, copy j
    /// scored only at the last prompt position against target token j, so the mean loss is
    /// −mean_j log p(target_j | prompt) (a bag-of-target-tokens loss).
    static func promptLast(prompt: [Int], target: [Int]) throws -> TrainingBatch {
        let tokens = Array(repeating: prompt, count: target.count)
        let targets = target.map { y -> [Int] in
            var row = [Int](repeating: -1, count: prompt.count)
            row[prompt.count - 1] = y
            return row
        }
        return try TrainingBatch(tokens: tokens, targets: targets)
    }

    /// Teacher-forced NLL of the target after each prompt (FT-M / ROME's value loss), right-padded.
    static func teacherForced(prompts: [[Int]], target: [Int], pad: Int) throws -> TrainingBatch {
        try TrainingBatch.completions(prompts.map { ($0, target) }, pad: pad)
    }
}

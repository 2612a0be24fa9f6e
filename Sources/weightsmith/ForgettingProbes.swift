import ArgumentParser
import Foundation
import Tensors
import Transformer
import Tokenizers

/// Prior-knowledge data for measuring forgetting (`repair --forgetting`, `compare --forgetting`):
/// a plain-text file gives the LM loss per token over windows of `window` tokens, a JSONL file of
/// prompt/completion probes the mean completion NLL; the forgetting loss is the mean over files.
struct ForgettingProbes {
    enum Probe { case text(String), pairs([([Int], [Int])]) }
    let paths: [String]
    let probes: [Probe]
    let window: Int

    /// Reads every file (before any long work), so a bad one fails fast.
    static func check(_ paths: [String]) throws {
        for path in paths {
            if path.hasSuffix(".jsonl") {
                guard !(try PromptCompletion.readJSONL(URL(fileURLWithPath: path))).isEmpty else { throw ValidationError("\(path): no examples") }
            } else {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path): cannot read it as UTF-8 text") }
                guard !text.isEmpty else { throw ValidationError("\(path): empty") }
            }
        }
    }

    init(paths: [String], tokenizer: BPETokenizer, window: Int) throws {
        self.paths = paths
        self.window = window
        probes = try paths.map { path in
            if path.hasSuffix(".jsonl") {
                let ex = try PromptCompletion.readJSONL(URL(fileURLWithPath: path))
                guard !ex.isEmpty else { throw ValidationError("\(path): no examples") }
                return .pairs(ex.map { (tokenizer.encode($0.prompt), tokenizer.encode($0.completion, addSpecialTokens: false)) })
            }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path): cannot read it as UTF-8 text") }
            return .text(text)
        }
    }

    /// The mean forgetting loss of `model` over the files (nil without files).
    func loss(_ model: TransformerModel, tokenizer: BPETokenizer) throws -> Double? {
        guard !probes.isEmpty else { return nil }
        let workers = max(1, BLASThreads.budget / BLASThreads.current)
        var f: [Double] = []
        for p in probes {
            switch p {
            case let .pairs(pairs): f.append(try Evaluator.evaluate(model: model, tokenized: pairs, workers: workers).meanNLL)
            case let .text(text):
                f.append(try Evaluator(model: model, tokenizer: tokenizer).perplexity(text: text, window: min(window, model.config.maxPositions)).meanNLL)
            }
        }
        return f.reduce(0, +) / Double(f.count)
    }
}

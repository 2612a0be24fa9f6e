import Foundation
import Transformer
import Tokenizers

/// Scores of one edit request on one model (EasyEdit's token-level protocol, Wang et al. 2024).
///
/// - efficacy: fraction of target tokens that are the argmax under teacher forcing after the
///   prompt; `efficacyProbability` is the target's per-token geometric-mean probability
///   exp(mean log p(target_j | prompt, target_<j)).
/// - paraphrase: the same accuracy averaged over the paraphrase prompts (nil without any).
/// - locality: fraction of the locality prompts' reference tokens (the original model's greedy
///   continuation) that the scored model still predicts under teacher forcing (nil without any).
/// - answer: the greedy continuation of the prompt, as many tokens as the target has.
public struct EditScores: Sendable, Equatable, Codable {
    public var efficacy: Double
    public var efficacyProbability: Double
    public var paraphrase: Double?
    public var locality: Double?
    public var answer: String
}

/// What the unedited model predicts on the locality prompts: per prompt, its ids and the greedy
/// continuation of `tokens` tokens. Recorded before an edit, scored after it.
public struct LocalityReference: Sendable, Equatable {
    public var prompts: [[Int]]
    public var continuations: [[Int]]
}

public struct EditScorer {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer

    public init(model: TransformerModel, tokenizer: BPETokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// Prompt ids (with the tokenizer's special tokens, e.g. BOS) and target ids (without).
    public func encode(prompt: String, target: String) throws -> (prompt: [Int], target: [Int]) {
        let p = tokenizer.encode(prompt), t = tokenizer.encode(target, addSpecialTokens: false)
        guard !p.isEmpty, !t.isEmpty else { throw EditError.invalidRequest("the prompt \"\(prompt)\" or the target \"\(target)\" encodes to no tokens") }
        return (p, t)
    }

    /// Teacher-forced target accuracy and mean log-probability of `target` after `prompt`.
    public func targetScore(prompt: [Int], target: [Int]) throws -> (accuracy: Double, meanLogProb: Double) {
        let V = model.config.vocabSize
        let logits = try model.forward([prompt + target])
        var hits = 0, lp = 0.0
        for (j, y) in target.enumerated() {
            let pos = prompt.count - 1 + j
            let row = logits.scalars[pos * V..<(pos + 1) * V]
            if Sampler.argmax(row) == y { hits += 1 }
            lp += logSoftmax(row, y)
        }
        return (Double(hits) / Double(target.count), lp / Double(target.count))
    }

    /// Greedy continuation of `prompt` by `count` tokens.
    public func greedy(_ prompt: [Int], count: Int) throws -> [Int] {
        let V = model.config.vocabSize
        var ids = prompt, out: [Int] = []
        for _ in 0..<count {
            let logits = try model.forward([ids], lastOnly: true)
            let next = Sampler.argmax(logits.scalars[0..<V])
            out.append(next); ids.append(next)
        }
        return out
    }

    /// Greedy continuations of several prompts at once: each step one packed forward pass of all
    /// the sequences (each on its own positions, no padding), logits only at their last tokens.
    public func greedy(batch prompts: [[Int]], count: Int) throws -> [[Int]] {
        let V = model.config.vocabSize
        var seqs = prompts, out = prompts.map { _ in [Int]() }
        guard !prompts.isEmpty else { return [] }
        for _ in 0..<count {
            var ends: [Int] = [], offset = 0
            for s in seqs { offset += s.count; ends.append(offset - 1) }
            let logits = try model.forwardPacked(seqs, logitRows: ends).scalars
            for b in seqs.indices {
                let next = Sampler.argmax(logits[b * V..<(b + 1) * V])
                out[b].append(next); seqs[b].append(next)
            }
        }
        return out
    }

    /// Records the model's greedy continuations of the locality prompts (`tokens` each).
    public func localityReference(_ prompts: [String], tokens: Int = 3) throws -> LocalityReference {
        var ps: [[Int]] = []
        for p in prompts {
            let ids = tokenizer.encode(p)
            guard !ids.isEmpty else { throw EditError.invalidRequest("the locality prompt \"\(p)\" encodes to no tokens") }
            ps.append(ids)
        }
        return LocalityReference(prompts: ps, continuations: try greedy(batch: ps, count: tokens))
    }

    /// Fraction of the reference tokens this model still predicts (teacher forced); nil when empty.
    public func locality(_ ref: LocalityReference) throws -> Double? {
        var same = 0, total = 0
        let V = model.config.vocabSize
        for (p, c) in zip(ref.prompts, ref.continuations) where !c.isEmpty {
            let logits = try model.forward([p + c])
            for (j, y) in c.enumerated() {
                let pos = p.count - 1 + j
                if Sampler.argmax(logits.scalars[pos * V..<(pos + 1) * V]) == y { same += 1 }
                total += 1
            }
        }
        return total == 0 ? nil : Double(same) / Double(total)
    }

    /// All scores of `request` on this model; `locality` from a reference recorded on the original.
    public func score(_ request: EditRequest, locality ref: LocalityReference?) throws -> EditScores {
        let (p, t) = try encode(prompt: request.text, target: request.target)
        let (acc, lp) = try targetScore(prompt: p, target: t)
        var para: Double? = nil
        if !request.paraphrases.isEmpty {
            var s = 0.0
            for q in request.paraphrases {
                let (pq, tq) = try encode(prompt: q, target: request.target)
                s += try targetScore(prompt: pq, target: tq).accuracy
            }
            para = s / Double(request.paraphrases.count)
        }
        let answer = try tokenizer.decode(try greedy(p, count: t.count), skipSpecialTokens: true)
        return EditScores(efficacy: acc, efficacyProbability: Foundation.exp(lp), paraphrase: para,
                          locality: try ref.flatMap { try locality($0) }, answer: answer)
    }
}

/// The log-softmax normaliser of a row in Float64, as its maximum m and log Σ exp(row − m):
/// log softmax(row)[v] = row[v] − m − l.
func logNormaliser(_ row: ArraySlice<Float>) -> (max: Double, logSum: Double) {
    let m = Double(row.max() ?? 0)
    var s = 0.0
    for v in row { s += Foundation.exp(Double(v) - m) }
    return (m, Foundation.log(s))
}

/// log softmax(row)[target] in Float64.
func logSoftmax(_ row: ArraySlice<Float>, _ target: Int) -> Double {
    let (m, l) = logNormaliser(row)
    return Double(row[row.startIndex + target]) - m - l
}

import Foundation
import Transformer

/// CounterFact's probability scores of one edit request (Meng et al. 2022, ROME, §3 and
/// Appendix D). For a prompt x and a continuation c, score(c | x) is the mean over c's tokens of
/// log p(token | x, the tokens of c before it) (teacher forced, length-normalised), and
/// P(c) = exp(score(c | x)). Then
/// - `efficacyScore`: 1 when P(new) > P(true) on the edit prompt, else 0 (ES);
/// - `efficacyMagnitude`: P(new) − P(true) on the edit prompt (EM);
/// - `paraphraseScore`: the share of paraphrase prompts with P(new) > P(true) (PS);
/// - `neighbourhoodScore`: the share of neighbourhood prompts whose own true answer stays more
///   likely than the new target, P(answer) > P(new) (NS).
/// The inequalities are strict, as in the reference code. A score is nil when the request lacks
/// its data: no ground truth (ES, EM, PS), no paraphrases (PS), no neighbourhood answers (NS).
/// Means over requests skip the nils (so they average over the requests that have the data).
public struct CounterFactScores: Sendable, Equatable, Codable {
    public var efficacyScore: Double?
    public var efficacyMagnitude: Double?
    public var paraphraseScore: Double?
    public var neighbourhoodScore: Double?

    public init(efficacyScore: Double? = nil, efficacyMagnitude: Double? = nil, paraphraseScore: Double? = nil, neighbourhoodScore: Double? = nil) {
        self.efficacyScore = efficacyScore; self.efficacyMagnitude = efficacyMagnitude
        self.paraphraseScore = paraphraseScore; self.neighbourhoodScore = neighbourhoodScore
    }

    /// The scores from mean log-probabilities (natural log): `rewrite` on the edit prompt (new
    /// target, true answer), `paraphrases` likewise per paraphrase prompt, and `neighbours` per
    /// neighbourhood prompt (its true answer, the new target).
    public init(rewrite: (new: Double, true: Double)?, paraphrases: [(new: Double, true: Double)],
                neighbours: [(answer: Double, new: Double)]) {
        if let r = rewrite {
            efficacyScore = r.new > r.true ? 1 : 0
            efficacyMagnitude = Foundation.exp(r.new) - Foundation.exp(r.true)
        }
        if !paraphrases.isEmpty {
            paraphraseScore = Double(paraphrases.filter { $0.new > $0.true }.count) / Double(paraphrases.count)
        }
        if !neighbours.isEmpty {
            neighbourhoodScore = Double(neighbours.filter { $0.answer > $0.new }.count) / Double(neighbours.count)
        }
    }

    /// Means over requests, each score over the requests that have it (nil when none has).
    public static func mean(_ xs: [CounterFactScores]) -> CounterFactScores {
        func avg(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
        return CounterFactScores(efficacyScore: avg(xs.compactMap(\.efficacyScore)), efficacyMagnitude: avg(xs.compactMap(\.efficacyMagnitude)),
                                 paraphraseScore: avg(xs.compactMap(\.paraphraseScore)), neighbourhoodScore: avg(xs.compactMap(\.neighbourhoodScore)))
    }
}

extension EditScorer {
    /// score(c | x) above: the mean log-probability of `continuation`'s tokens after `prompt`.
    public func meanLogProbability(prompt: String, continuation: String) throws -> Double {
        let (p, t) = try encode(prompt: prompt, target: continuation)
        return try targetScore(prompt: p, target: t).meanLogProb
    }

    /// CounterFact's scores of `request` on this model (see `CounterFactScores`). The true answer
    /// of the edit prompt and the paraphrases is `groundTruth`; the neighbourhood prompts'
    /// answers are `localityAnswers`.
    public func counterFact(_ request: EditRequest) throws -> CounterFactScores {
        var rewrite: (new: Double, true: Double)? = nil
        var paraphrases: [(new: Double, true: Double)] = []
        if let truth = request.groundTruth {
            rewrite = (try meanLogProbability(prompt: request.text, continuation: request.target),
                       try meanLogProbability(prompt: request.text, continuation: truth))
            for q in request.paraphrases {
                paraphrases.append((try meanLogProbability(prompt: q, continuation: request.target),
                                    try meanLogProbability(prompt: q, continuation: truth)))
            }
        }
        var neighbours: [(answer: Double, new: Double)] = []
        if request.localityAnswers.count == request.localityPrompts.count {
            for (q, a) in zip(request.localityPrompts, request.localityAnswers) {
                neighbours.append((try meanLogProbability(prompt: q, continuation: a),
                                   try meanLogProbability(prompt: q, continuation: request.target)))
            }
        }
        return CounterFactScores(rewrite: rewrite, paraphrases: paraphrases, neighbours: neighbours)
    }
}

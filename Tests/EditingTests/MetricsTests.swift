import Foundation
import Transformer
import XCTest
@testable import Editing

final class MetricsTests: XCTestCase {
    /// Efficacy 1 exactly when the Evaluator's greedy exact match holds; probability = exp(−NLL).
    func testEfficacyAgreesWithEvaluator() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        for (prompt, target) in [("The capital of France is", " Paris"), ("The capital of France is", " Rome"), ("Norway is in", " Europe")] {
            let s = try scorer.score(EditRequest(prompt: prompt, target: target), locality: nil)
            let e = try Evaluator(model: pm.model, tokenizer: pm.tokenizer).evaluate([PromptCompletion(prompt: prompt, completion: target)])
            XCTAssertEqual(s.efficacy == 1, e.exactMatch == 1, "\(prompt)\(target)")
            XCTAssertEqual(s.efficacyProbability, exp(-e.meanNLL), accuracy: 1e-5)
        }
        let ref = try scorer.localityReference(localityPrompts)
        XCTAssertEqual(try scorer.locality(ref), 1)
    }

    /// The batched greedy continuation (one packed forward per step) is the one-prompt-at-a-time
    /// greedy continuation, for prompts of different lengths.
    func testBatchedGreedyEqualsOneAtATime() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let prompts = ["The capital of France is", "Norway is in", "The", "Paris is the capital of"].map { pm.tokenizer.encode($0) }
        let batch = try scorer.greedy(batch: prompts, count: 4)
        XCTAssertEqual(batch, try prompts.map { try scorer.greedy($0, count: 4) })
        XCTAssertEqual(batch.map(\.count), [4, 4, 4, 4])
        XCTAssertEqual(try scorer.greedy(batch: [], count: 3), [])
    }

    /// CounterFact's scores from probabilities chosen by hand (strict inequalities, as the reference).
    func testCounterFactScoresByHand() {
        let l = { (p: Double) in Foundation.log(p) }
        let s = CounterFactScores(rewrite: (new: l(0.3), true: l(0.2)),
                                  paraphrases: [(new: l(0.1), true: l(0.2)), (new: l(0.5), true: l(0.4)), (new: l(0.25), true: l(0.25))],
                                  neighbours: [(answer: l(0.6), new: l(0.1)), (answer: l(0.2), new: l(0.2)), (answer: l(0.1), new: l(0.3)), (answer: l(0.9), new: l(0.05))])
        XCTAssertEqual(s.efficacyScore, 1)
        XCTAssertEqual(s.efficacyMagnitude!, 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.paraphraseScore!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.neighbourhoodScore!, 0.5, accuracy: 1e-12)
        let tie = CounterFactScores(rewrite: (new: l(0.2), true: l(0.2)), paraphrases: [], neighbours: [])
        XCTAssertEqual(tie.efficacyScore, 0)
        XCTAssertEqual(tie.efficacyMagnitude!, 0, accuracy: 1e-15)
        XCTAssertNil(tie.paraphraseScore)
        XCTAssertNil(tie.neighbourhoodScore)
        let worse = CounterFactScores(rewrite: (new: l(0.05), true: l(0.7)), paraphrases: [], neighbours: [])
        XCTAssertEqual(worse.efficacyMagnitude!, -0.65, accuracy: 1e-12)
        // Means skip the requests without the data.
        let m = CounterFactScores.mean([s, tie, worse])
        XCTAssertEqual(m.efficacyScore!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.efficacyMagnitude!, (0.1 + 0 - 0.65) / 3, accuracy: 1e-12)
        XCTAssertEqual(m.paraphraseScore!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.neighbourhoodScore!, 0.5, accuracy: 1e-12)
        XCTAssertNil(CounterFactScores.mean([tie]).neighbourhoodScore)
    }

    /// The scorer's CounterFact scores on the fixture equal those from the Evaluator's mean NLL
    /// (an independent forward and loss): P(c) = exp(−NLL(c)).
    func testCounterFactAgreesWithEvaluator() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let evaluator = Evaluator(model: pm.model, tokenizer: pm.tokenizer)
        func p(_ prompt: String, _ c: String) throws -> Double {
            exp(-(try evaluator.evaluate([PromptCompletion(prompt: prompt, completion: c)]).meanNLL))
        }
        let r = EditRequest(prompt: "The capital of {} is", subject: "France", target: " Rome", groundTruth: " Paris",
                            paraphrases: ["France has its capital in", "In France, the capital is"],
                            localityPrompts: ["The capital of Spain is", "The capital of Japan is", "The capital of Italy is"],
                            localityAnswers: [" Madrid", " Tokyo", " Rome"])
        let s = try scorer.counterFact(r)
        let new = try p("The capital of France is", " Rome"), truth = try p("The capital of France is", " Paris")
        XCTAssertGreaterThan(truth, new)
        XCTAssertEqual(s.efficacyScore, 0)
        XCTAssertEqual(s.efficacyMagnitude!, new - truth, accuracy: 1e-5)
        var ps = 0.0
        for q in r.paraphrases where try p(q, " Rome") > p(q, " Paris") { ps += 1 }
        XCTAssertEqual(s.paraphraseScore!, ps / 2, accuracy: 1e-12)
        var ns = 0.0
        for (q, a) in zip(r.localityPrompts, r.localityAnswers) where try p(q, a) > p(q, " Rome") { ns += 1 }
        XCTAssertEqual(s.neighbourhoodScore!, ns / 3, accuracy: 1e-12)
        // Italy's answer is the new target itself: P(answer) > P(new) cannot hold (strict).
        XCTAssertEqual(ns, 2)
        XCTAssertNil(try scorer.counterFact(EditRequest(prompt: "The capital of France is", target: " Rome")).efficacyScore)
    }

    /// Generation entropy on texts whose n-gram counts are known.
    func testGenerationEntropyByHand() {
        XCTAssertEqual(GenerationEntropy.words("France's capital, Paris.  It is"), ["France", "'s", "capital", ",", "Paris", ".", "It", "is"])
        XCTAssertEqual(GenerationEntropy.words("' a"), ["'", "a"])
        // "a b a b": bigrams ab, ba, ab (2/3, 1/3); trigrams aba, bab (1/2, 1/2).
        let h2: Double = -(2.0 / 3.0 * log2(2.0 / 3.0) + 1.0 / 3.0 * log2(1.0 / 3.0))
        XCTAssertEqual(GenerationEntropy.entropy(["a", "b", "a", "b"], n: 2), h2, accuracy: 1e-12)
        XCTAssertEqual(GenerationEntropy.entropy(["a", "b", "a", "b"], n: 3), 1, accuracy: 1e-12)
        let abab: Double = (2.0 / 3.0 * h2 + 4.0 / 3.0) / 2.0
        XCTAssertEqual(GenerationEntropy.of("a b a b"), abab, accuracy: 1e-12)
        // Eight distinct words: 7 distinct bigrams, 6 distinct trigrams.
        let distinct: Double = (2.0 / 3.0 * log2(7.0) + 4.0 / 3.0 * log2(6.0)) / 2.0
        XCTAssertEqual(GenerationEntropy.of("one two three four five six seven eight"), distinct, accuracy: 1e-12)
        // A text repeating one word has no entropy; too short a text has none either.
        XCTAssertEqual(GenerationEntropy.of("the the the the the"), 0)
        XCTAssertEqual(GenerationEntropy.of("Paris"), 0)
        XCTAssertEqual(GenerationEntropy.of("Paris is"), 0)
        XCTAssertEqual(GenerationEntropy.of(""), 0)
    }

    /// The scorer's generation entropy is that of the prompt and its greedy continuation
    /// (checked against the scorer's cache-free greedy decoding).
    func testGenerationEntropyOfGreedyText() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let prompts = ["The capital of France is a city that", "The job of Olga Holm is"]
        var want = 0.0
        for q in prompts {
            var ids = try scorer.greedy(pm.tokenizer.encode(q), count: 12)
            if let eos = ids.firstIndex(where: { pm.model.config.eosTokenIds.contains($0) || $0 == pm.tokenizer.eosTokenId }) { ids = Array(ids[..<eos]) }
            want += GenerationEntropy.of(q + (try pm.tokenizer.decode(ids)))
        }
        let got = try XCTUnwrap(scorer.generationEntropy(prompts, tokens: 12))
        XCTAssertEqual(got, want / 2, accuracy: 1e-12)
        XCTAssertGreaterThan(got, 0)
        XCTAssertNil(try scorer.generationEntropy([], tokens: 12))
        XCTAssertNil(try scorer.generationEntropy(prompts, tokens: 0))
    }
}

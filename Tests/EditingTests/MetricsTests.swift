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
}

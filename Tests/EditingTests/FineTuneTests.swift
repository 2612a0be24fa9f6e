import Foundation
import Transformer
import XCTest
@testable import Editing

final class FineTuneTests: XCTestCase {
    let request = EditRequest(prompt: "The capital of France is", target: " Rome")

    /// Every entry moves by at most ε, the bound is reached, only the edited tensor changes,
    /// and the loss falls.
    func testNormBoundHolds() throws {
        let pm = try familyBase()
        let eps: Float = 2e-3
        let before = pm.model.parameters.tensor("model.layers.0.mlp.up_proj.weight")!
        let r = try FineTuneEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request,
                                        settings: FineTuneSettings(layer: 0, steps: 10, learningRate: 1e-2, normBound: eps))
        XCTAssertEqual(r.edit.weight, "model.layers.0.mlp.down_proj.weight")
        XCTAssertLessThanOrEqual(r.edit.maxAbs, eps * (1 + 1e-5))
        XCTAssertGreaterThan(r.edit.maxAbs, eps * 0.99)
        XCTAssertLessThan(r.losses.last!, r.losses.first!)
        XCTAssertEqual(pm.model.parameters.tensor("model.layers.0.mlp.up_proj.weight")!, before)
    }

    /// The prompt-last loss equals −mean_j log p(target_j | prompt), computed from the forward logits.
    func testPromptLastLossMatchesForward() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let (p, t) = try scorer.encode(prompt: request.text, target: request.target)
        let V = pm.model.config.vocabSize
        let logits = try pm.model.forward([p]).scalars
        let row = logits[(p.count - 1) * V..<p.count * V]
        let expected = -t.map { logSoftmax(row, $0) }.reduce(0, +) / Double(t.count)
        let r = try FineTuneEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request,
                                        settings: FineTuneSettings(layer: 0, steps: 1, learningRate: 1e-3, normBound: nil))
        XCTAssertEqual(r.losses[0], expected, accuracy: 1e-4 * abs(expected))
    }
}

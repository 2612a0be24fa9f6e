import Foundation
import Tensors
import Transformer
import XCTest
@testable import Editing

/// GPT-2 (Conv1D (in, out) weights): MEND's edit layout ŨᵀD̃ and its meta-gradient, on the tiny
/// GPT-2 fixture of the transformer tests (token ids, no tokenizer needed).
final class Conv1DTests: XCTestCase {
    func gpt2() throws -> TransformerModel {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("TransformerTests/Fixtures/models/gpt2")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else { throw XCTSkip("no GPT-2 fixture") }
        return try TransformerModel.load(path: dir.path)
    }

    func testMendConv1DMetaGradient() throws {
        let m = try gpt2()
        let editor = try MendEditor(model: m, rank: 8, editLR: 1e-2, seed: 3)
        XCTAssertTrue(editor.conv1D)
        XCTAssertEqual(editor.weights, ["transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_fc.weight",
                                        "transformer.h.1.mlp.c_proj.weight", "transformer.h.1.mlp.c_fc.weight"])
        let inner = try TrainingBatch.completions([([1, 5, 9, 14], [22, 31])])
        let outer = try TrainingBatch.completions([([2, 6, 9, 14], [22, 31])])
        let loc = try TrainingBatch.completions([([3, 7, 11], [40, 41])])
        let batches = MendObjective.Batches(inner: inner, outer: [outer], locality: loc)
        let objective = MendObjective(cEdit: 1, cLoc: 1)
        _ = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: true)
        // The edit of c_fc (in, out) = α ŨᵀD̃: check one entry against its definition.
        let (factors, edits) = try editor.edit(model: m, batch: inner, training: false)
        let f = factors[1], I = 24, O = m.config.intermediateSize
        XCTAssertEqual(edits[1].delta.shape.dims, [I, O])
        var e = 0.0
        for r in 0..<f.tape.rows { e += Double(f.uTilde[r * I + 3]) * Double(f.dTilde[r * O + 7]) }
        XCTAssertEqual(Double(edits[1].delta.scalars[3 * O + 7]), Double(editor.editLRs[1]) * e, accuracy: 1e-6 + 1e-4 * abs(e))
        let r = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false)
        XCTAssertGreaterThan(r.gradients.editLRs.map(abs).max()!, 1e-2)
        for i in 0..<editor.weights.count {
            let x = editor.editLRs[i], eps: Float = 1e-3
            editor.editLRs[i] = x + eps
            let lp = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false).loss
            editor.editLRs[i] = x - eps
            let lm = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false).loss
            editor.editLRs[i] = x
            let fd = (lp - lm) / Double(2 * eps)
            XCTAssertEqual(Double(r.gradients.editLRs[i]), fd, accuracy: 0.05 * abs(fd) + 1e-3, "edit_lrs[\(i)]")
        }
    }
}

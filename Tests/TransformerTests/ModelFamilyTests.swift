import Foundation
import Tensors
import XCTest
@testable import Transformer

/// The families added with the block descriptions: cached decoding across a sliding window,
/// LoRA targets of fused projections, the stage numbering, and the configs refused.
final class ModelFamilyTests: XCTestCase {
    static let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("models")

    func load(_ name: String) throws -> TransformerModel { try TransformerModel.load(path: Self.dir.appendingPathComponent(name).path) }

    /// Decoding one token at a time through the KV cache gives the logits of the whole-sequence
    /// pass, past the window (4 or 5) and across local and global layers.
    func testCachedDecodingEqualsTheFullPassPastTheWindow() throws {
        for name in ["mistral_window", "gemma2", "gemma3", "phi3", "qwen3"] {
            let model = try load(name)
            let ids = (0..<11).map { ($0 * 7 + 3) % model.config.vocabSize }
            let full = try model.forward([ids])
            let cache = model.makeCache(batch: 1, capacity: ids.count)
            var worst: Float = 0
            for (t, id) in ids.enumerated() {
                let step = try model.forward([[id]], cache: cache, lastOnly: true)
                let V = model.config.vocabSize
                for v in 0..<V { worst = max(worst, abs(step.scalars[v] - full.scalars[t * V + v])) }
            }
            XCTAssertLessThan(worst, 1e-4, name)
        }
    }

    /// The window changes the result: the same model without it gives other logits after
    /// position 4 and the same ones before.
    func testTheWindowMatters() throws {
        let windowed = try load("mistral_window")
        var config = windowed.config
        config.slidingWindow = nil
        let plain = TransformerModel(config: config)
        plain.parameters.base.update(from: windowed.parameters.base, count: windowed.layout.totalCount)
        let ids = [[1, 5, 9, 13, 17, 21, 25, 29]]
        let a = try windowed.forward(ids).scalars, b = try plain.forward(ids).scalars
        let V = config.vocabSize
        XCTAssertEqual(Array(a[0..<4 * V]), Array(b[0..<4 * V]))
        var later: Float = 0
        for i in (4 * V)..<a.count { later = max(later, abs(a[i] - b[i])) }
        XCTAssertGreaterThan(later, 1e-3)
    }

    /// Phi-3's default LoRA targets are its fused matrices; the layout and stages follow the
    /// description (Gemma 2: nine steps per block, its post-norms after their sub-blocks).
    func testDescriptionsDriveLoRAAndStages() throws {
        let phi = try load("phi3")
        let lora = try LoRAAdapters(model: phi, settings: .init(), seed: 1)
        XCTAssertEqual(Set(lora.modules.map { String($0.name.split(separator: ".").last!) }), ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
        XCTAssertEqual(phi.layout["model.layers.0.self_attn.qkv_proj.weight"]?.shape.dims, [24 + 2 * 2 * 6, 24])
        XCTAssertEqual(phi.layout["model.layers.0.mlp.gate_up_proj.weight"]?.shape.dims, [64, 24])
        let gemma = try load("gemma2")
        XCTAssertEqual(gemma.stepCount, 8)
        XCTAssertLessThan(gemma.stage(of: "model.layers.1.self_attn.o_proj.weight"), gemma.stage(of: "model.layers.1.post_attention_layernorm.weight"))
        XCTAssertLessThan(gemma.stage(of: "model.layers.1.post_attention_layernorm.weight"), gemma.stage(of: "model.layers.1.pre_feedforward_layernorm.weight"))
        XCTAssertEqual(gemma.stage(of: "model.norm.weight"), 1 + 8 * 2)
        let qwen = try load("qwen3")
        XCTAssertEqual(qwen.stepCount, 7)
        XCTAssertEqual(qwen.block.name(1, qwen.block.mlpOutput), "model.layers.1.mlp.down_proj")
        XCTAssertTrue(gemma.config.isSliding(layer: 0) && !gemma.config.isSliding(layer: 1))
        let g3 = try load("gemma3")
        XCTAssertEqual(g3.config.ropeTheta, 1_000_000)
        XCTAssertEqual(g3.config.localRopeTheta, 10000)
        XCTAssertNil(g3.config.ropeLinearFactor)
        // Linear scaling divides the global layers' frequencies only (the parity tests check the logits).
        let linear = try load("gemma3_linear")
        XCTAssertEqual(linear.config.ropeLinearFactor, 8)
        XCTAssertEqual(linear.invFreq.map { $0 * 8 }, g3.invFreq)
        XCTAssertEqual(linear.localInvFreq, g3.localInvFreq)
    }

    /// What a family does not support is refused with the key named.
    func testUnsupportedSettingsAreRefused() throws {
        let base: [String: Any] = ["model_type": "phi3", "vocab_size": 64, "hidden_size": 24, "intermediate_size": 32,
                                   "num_hidden_layers": 2, "num_attention_heads": 4]
        var partial = base
        partial["partial_rotary_factor"] = 0.5
        XCTAssertThrowsError(try ModelConfig(json: partial, path: "p/config.json")) {
            XCTAssertTrue("\($0)".contains("partial_rotary_factor"), "\($0)")
        }
        var long = base
        long["rope_scaling"] = ["type": "longrope"]
        XCTAssertThrowsError(try ModelConfig(json: long, path: "p/config.json")) { XCTAssertTrue("\($0)".contains("longrope"), "\($0)") }
        var scaledLocal = base
        scaledLocal["model_type"] = "gemma3_text"
        scaledLocal["rope_parameters"] = ["full_attention": ["rope_type": "linear", "factor": 8.0],
                                          "sliding_attention": ["rope_type": "linear", "factor": 2.0]]
        XCTAssertThrowsError(try ModelConfig(json: scaledLocal, path: "p/config.json")) { XCTAssertTrue("\($0)".contains("sliding_attention"), "\($0)") }
        var noFactor = base
        noFactor["model_type"] = "llama"
        noFactor["rope_scaling"] = ["rope_type": "linear"]
        XCTAssertThrowsError(try ModelConfig(json: noFactor, path: "p/config.json")) { XCTAssertTrue("\($0)".contains("factor"), "\($0)") }
        var gemma = base
        gemma["model_type"] = "gemma2"
        gemma["hidden_activation"] = "relu"
        XCTAssertThrowsError(try ModelConfig(json: gemma, path: "p/config.json")) { XCTAssertTrue("\($0)".contains("hidden_activation"), "\($0)") }
        var unknown = base
        unknown["model_type"] = "mamba"
        XCTAssertThrowsError(try ModelConfig(json: unknown, path: "p/config.json")) { XCTAssertTrue("\($0)".contains("gemma3_text"), "\($0)") }
    }
}

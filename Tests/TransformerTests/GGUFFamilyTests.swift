import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer

/// GGUF files of the families llama.cpp stores differently from Hugging Face (Qwen3's q/k norms,
/// Gemma's 1 + w norms and sandwich norms, Phi-3's fused projections, GPT-2's transposed Conv1D
/// matrices and written-out tied output). The fixtures are written by
/// scripts/make_family_gguf_fixtures.py the way llama.cpp's converter writes them, and checked
/// there against transformers' own GGUF loader; the logits are transformers' on the original model.
final class GGUFFamilyTests: XCTestCase {
    static let dir = ModelParityTests.dir.appendingPathComponent("gguf")
    static let families = ["qwen3", "gemma2", "gemma3", "gemma3_linear", "phi3", "gpt2"]

    static func expected(_ name: String) throws -> (ids: [[Int]], logits: Tensor) {
        let f = try SafetensorsFile(url: dir.appendingPathComponent("\(name).expected.safetensors"))
        let ids = try f.tensor("input_ids")
        let (B, T) = (ids.shape[0], ids.shape[1])
        return ((0..<B).map { b in (0..<T).map { Int(ids.scalars[b * T + $0]) } }, try f.tensor("logits"))
    }

    static func gguf(_ name: String) throws -> GGUFFile { try GGUFFile(url: dir.appendingPathComponent("\(name).gguf")) }

    /// Read natively (`TransformerModel(gguf:)`): the config from the metadata, the tensors with
    /// the converter's changes undone, the logits transformers gives on the original model.
    func testNativeLoadingMatchesTransformers() throws {
        for name in Self.families {
            let model = try TransformerModel(gguf: Self.gguf(name))
            let (ids, want) = try Self.expected(name)
            let got = try model.forward(ids)
            let diff = ModelParityTests.maxAbsDiff(got.scalars, want.scalars)
            XCTAssertLessThan(diff, 1e-4, name)
            print("gguf parity \(name): max |logit diff| \(diff)")
        }
    }

    /// The metadata becomes the configuration the original config.json gives (the keys a GGUF
    /// carries): windows, soft-caps, the query scale, Gemma 3's local layers and rotary bases.
    func testConfigurationFromMetadataEqualsTheOriginal() throws {
        for name in Self.families {
            let fromGGUF = try ModelConfig(gguf: Self.gguf(name))
            let original = try ModelConfig(configJSON: Self.dir.appendingPathComponent("\(name)/config.json"))
            XCTAssertEqual(fromGGUF.family, original.family, name)
            XCTAssertEqual(fromGGUF.layers, original.layers, name)
            XCTAssertEqual(fromGGUF.hiddenSize, original.hiddenSize, name)
            XCTAssertEqual(fromGGUF.intermediateSize, original.intermediateSize, name)
            XCTAssertEqual(fromGGUF.heads, original.heads, name)
            XCTAssertEqual(fromGGUF.kvHeads, original.kvHeads, name)
            XCTAssertEqual(fromGGUF.headDim, original.headDim, name)
            XCTAssertEqual(fromGGUF.normEps, original.normEps, accuracy: 1e-9, name)
            XCTAssertEqual(fromGGUF.tieEmbeddings, original.tieEmbeddings, name)
            XCTAssertEqual(fromGGUF.slidingWindow, original.slidingWindow, name)
            XCTAssertEqual(fromGGUF.slidingLayers, original.slidingLayers, name)
            XCTAssertEqual(fromGGUF.attentionSoftcap, original.attentionSoftcap, name)
            XCTAssertEqual(fromGGUF.finalSoftcap, original.finalSoftcap, name)
            XCTAssertEqual(fromGGUF.attentionScale, original.attentionScale, name)
            XCTAssertEqual(fromGGUF.ropeTheta, original.ropeTheta, name)
            XCTAssertEqual(fromGGUF.localRopeTheta, original.localRopeTheta, name)
            XCTAssertEqual(fromGGUF.maxPositions, original.maxPositions, name)
        }
    }

    /// convert-gguf writes the original Hugging Face tensors (exactly, but for Gemma's norms:
    /// (1 + w) - 1 rounds in Float32), a config.json that loads to the same logits, and for a
    /// SentencePiece vocabulary no tokenizer.json but a note saying so.
    func testConvertedFolderHoldsTheOriginalTensors() throws {
        let fm = FileManager.default
        for name in Self.families {
            let out = fm.temporaryDirectory.appendingPathComponent("ws-gguf-\(name)-\(UUID().uuidString)")
            defer { try? fm.removeItem(at: out) }
            let summary = try GGUFConverter.convert(gguf: Self.gguf(name), to: out)
            let bpe = ["qwen3", "gpt2"].contains(name)
            XCTAssertEqual(summary.files.contains("tokenizer.json"), bpe, name)
            XCTAssertEqual(summary.notes.isEmpty, bpe, name)
            let original = try Checkpoint(path: Self.dir.appendingPathComponent(name).path)
            let converted = try Checkpoint(path: out.path)
            // Hugging Face GPT-2 files hold attention-mask buffers, and tied models no lm_head.
            let kept = original.tensorNames.filter { !$0.hasSuffix(".attn.bias") && !$0.hasSuffix(".attn.masked_bias") }
            XCTAssertEqual(Set(kept), Set(converted.tensorNames), name)
            for n in kept {
                let a = try original.tensor(n), b = try converted.tensor(n)
                XCTAssertEqual(a.shape, b.shape, "\(name) \(n)")
                let tolerance: Float = name.hasPrefix("gemma") && n.hasSuffix("norm.weight") ? 1e-6 : 0
                XCTAssertLessThanOrEqual(ModelParityTests.maxAbsDiff(a.scalars, b.scalars), tolerance, "\(name) \(n)")
            }
            let model = try TransformerModel.load(path: out.path)
            let (ids, want) = try Self.expected(name)
            XCTAssertLessThan(ModelParityTests.maxAbsDiff(try model.forward(ids).scalars, want.scalars), 1e-4, name)
        }
    }

    /// Read as a checkpoint (what merge, inspect and spectrum see): the Hugging Face names and shapes.
    func testGGUFCheckpointHasTheHuggingFaceNamesAndShapes() throws {
        for name in Self.families {
            let c = try ModelReference.open(Self.dir.appendingPathComponent("\(name).gguf").path)
            let original = try Checkpoint(path: Self.dir.appendingPathComponent(name).path)
            let kept = original.tensorNames.filter { !$0.hasSuffix(".attn.bias") && !$0.hasSuffix(".attn.masked_bias") }
            XCTAssertEqual(Set(c.tensorNames), Set(kept), name)
            for n in kept { XCTAssertEqual(try c.tensor(n).shape, try original.tensor(n).shape, "\(name) \(n)") }
        }
    }

    /// The name tables invert each other on every tensor of the fixtures, and the changes are
    /// the converter's (a table or change that is wrong fails the parity tests above as well).
    func testNameTablesRoundTripAndChanges() throws {
        for name in Self.families {
            let g = try Self.gguf(name)
            let (_, a) = try GGUFArchitecture.of(g)
            for t in g.tensors {
                let hf = try XCTUnwrap(a.huggingFaceName(t.name), "\(name) \(t.name)")
                XCTAssertEqual(a.ggufName(hf), t.name, name)
            }
        }
        XCTAssertEqual(GGUFArchitecture.gemma2.change(of: "blk.0.post_ffw_norm.weight"), .subtractOne)
        XCTAssertEqual(GGUFArchitecture.gemma3.change(of: "blk.3.attn_q_norm.weight"), .subtractOne)
        XCTAssertEqual(GGUFArchitecture.qwen3.change(of: "blk.0.attn_q_norm.weight"), .none)
        XCTAssertEqual(GGUFArchitecture.gpt2.change(of: "blk.1.attn_qkv.weight"), .transpose)
        XCTAssertEqual(GGUFArchitecture.gpt2.change(of: "blk.1.attn_qkv.bias"), .none)
        XCTAssertEqual(GGUFArchitecture.llama.change(of: "blk.0.attn_k.weight"), .unpermute(.key))
        XCTAssertEqual(GGUFArchitecture.qwen2.change(of: "blk.0.attn_k.weight"), .none)
        XCTAssertTrue(try GGUFArchitecture.gpt2.tiesEmbeddings(Self.gguf("gpt2")), "GPT-2's output.weight is a copy of token_embd")
    }
}

import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer
import Tokenizers

final class GGUFConversionTests: XCTestCase {
    static let tokDir = TokenizerTests.dir

    /// The tokenizer from GGUF metadata, and the tokenizer.json the converter rebuilds from it,
    /// both equal Python `tokenizers` on the corpus.
    func testTokenizerFromGGUFAndRebuiltJSON() throws {
        let corpus = try XCTUnwrap(TokenizerTests.json("corpus.json") as? [String])
        let expected = try XCTUnwrap(TokenizerTests.json("expected.json") as? [String: [String: Any]])
        for kind in ["gpt2", "llama3", "smollm"] {
            let gguf = try GGUFFile(url: Self.tokDir.appendingPathComponent("\(kind).gguf"))
            let fromGGUF = try BPETokenizer(gguf: gguf)
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-\(kind)-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: tmp) }
            let json = try GGUFConverter.tokenizerJSON(gguf.metadata, path: gguf.url.path)
            try JSONSerialization.data(withJSONObject: json).write(to: tmp)
            let rebuilt = try BPETokenizer(tokenizerJSON: tmp)
            let ids = try XCTUnwrap(expected[kind]?["ids"] as? [[Int]])
            var bad = 0
            for (i, s) in corpus.enumerated() {
                if fromGGUF.encode(s) != ids[i] || rebuilt.encode(s) != ids[i] {
                    bad += 1
                    if bad < 4 { XCTFail("\(kind) #\(i) \(s.debugDescription): gguf \(fromGGUF.encode(s)) json \(rebuilt.encode(s)) expected \(ids[i])") }
                }
            }
            XCTAssertEqual(bad, 0, kind)
        }
    }

    /// GGUF -> Hugging Face folder -> same logits as transformers on the original model.
    func testConvertedFolderMatchesTransformers() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ws-conv-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let gguf = try GGUFFile(url: ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf"))
        let summary = try GGUFConverter.convert(gguf: gguf, to: out)
        XCTAssertEqual(summary.files, ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        let model = try TransformerModel.load(path: out.path)
        let (ids, want) = try ModelParityTests.expected("llama")
        let got = try model.forward(ids)
        XCTAssertLessThan(ModelParityTests.maxAbsDiff(got.scalars, want.scalars), 1e-4)
        // The converted weights equal the original Hugging Face tensors exactly (F32 GGUF).
        let original = try Checkpoint(path: ModelParityTests.dir.appendingPathComponent("llama").path)
        let converted = try Checkpoint(path: out.path)
        XCTAssertEqual(original.tensorNames, converted.tensorNames)
        for n in original.tensorNames { XCTAssertEqual(try original.tensor(n), try converted.tensor(n), n) }
        // Refuses to overwrite.
        XCTAssertThrowsError(try GGUFConverter.convert(gguf: gguf, to: out))
    }

    /// A model read natively from a GGUF file and written by a command (edit, finetune, graft copy
    /// the files of `PretrainedModel.directory`) is a complete folder: the side folder holds the
    /// config and tokenizer files `convert-gguf` writes, byte for byte, and the folder loads back to
    /// the same logits.
    func testModelWrittenFromAGGUFCarriesItsConfigAndTokenizer() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("ws-gguf-side-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        let gguf = try GGUFFile(url: ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf"))
        let converted = dir.appendingPathComponent("converted")
        _ = try GGUFConverter.convert(gguf: gguf, to: converted)
        let side = try ModelReference.sideFolder(of: gguf)
        for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            XCTAssertEqual(try Data(contentsOf: side.appendingPathComponent(name)), try Data(contentsOf: converted.appendingPathComponent(name)), name)
        }
        XCTAssertEqual(try ModelReference.sideFolder(of: gguf), side, "one side folder per file")
        let model = try TransformerModel(gguf: gguf)
        let written = dir.appendingPathComponent("written")
        try fm.createDirectory(at: written, withIntermediateDirectories: true)
        try model.writeFolder(into: written, sideFilesFrom: side)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: written.path).sorted(),
                       ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        let (ids, want) = try ModelParityTests.expected("llama")
        let got = try TransformerModel.load(path: written.path).forward(ids)
        XCTAssertLessThan(ModelParityTests.maxAbsDiff(got.scalars, want.scalars), 1e-4)
    }

    /// A folder without config.json is refused naming the folder and what is missing (not a raw
    /// Foundation error).
    func testMissingConfigIsNamed() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("ws-noconfig-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ModelConfig(configJSON: dir.appendingPathComponent("config.json"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(dir.path) && text.contains("no config.json"), text)
            XCTAssertFalse(text.contains("NSCocoaErrorDomain"), text)
        }
    }
}

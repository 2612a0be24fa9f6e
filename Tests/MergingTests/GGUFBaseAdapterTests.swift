import Foundation
import XCTest

/// A LoRA trained on a GGUF base: the adapter names its base by the GGUF path (weightsmith loads
/// it back), its tensors carry Hugging Face names, and the command says PEFT cannot load that base.
final class GGUFBaseAdapterTests: XCTestCase {
    func testLoRAOnGGUFBaseNotesPEFTAndLoadsBack() throws {
        try Binary.requireBuilt()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-ggufbase-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let gguf = "fixtures/family/profession.gguf", data = "fixtures/family/data/profession-train.jsonl"
        let out = tmp.appendingPathComponent("adapter")
        let r = try Binary.run(["finetune", gguf, data, "--mode", "lora", "--steps", "2", "--threads", "1", "-o", out.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("note: the adapter's base_model_name_or_path will be \(gguf)"), r.err)
        XCTAssertTrue(r.err.contains("weightsmith convert-gguf \(gguf) DIR"), r.err)

        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(config?["base_model_name_or_path"] as? String, gguf)
        // Tensor names are PEFT's over Hugging Face module names, not llama.cpp's blk.N.attn_q.
        let file = try Data(contentsOf: out.appendingPathComponent("adapter_model.safetensors"))
        let n = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let names = try XCTUnwrap(JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + n))) as? [String: Any]).keys
        XCTAssertTrue(names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), "\(names.sorted())")
        XCTAssertFalse(names.contains { $0.contains("blk.") }, "\(names.sorted())")
        // The adapter alone resolves its GGUF base.
        let ev = try Binary.run(["eval", out.path, "fixtures/family/data/profession-heldout.jsonl", "--quiet", "--threads", "1"])
        XCTAssertEqual(ev.status, 0, ev.err)
        XCTAssertTrue(ev.out.contains("mean NLL"), ev.out)

        // --quiet drops the note; the dry run gives it too (before anything is trained).
        let q = try Binary.run(["finetune", gguf, data, "--mode", "lora", "--dry-run", "--quiet", "-o", tmp.appendingPathComponent("q").path])
        XCTAssertEqual(q.status, 0, q.err)
        XCTAssertFalse(q.err.contains("note: the adapter's"), q.err)
        let d = try Binary.run(["finetune", gguf, data, "--mode", "lora", "--dry-run", "-o", tmp.appendingPathComponent("d").path])
        XCTAssertEqual(d.status, 0, d.err)
        XCTAssertTrue(d.err.contains("note: the adapter's base_model_name_or_path"), d.err)
        // A full fine-tune writes a folder: no note.
        let f = try Binary.run(["finetune", gguf, data, "--mode", "full", "--dry-run", "-o", tmp.appendingPathComponent("f").path])
        XCTAssertEqual(f.status, 0, f.err)
        XCTAssertFalse(f.err.contains("base_model_name_or_path"), f.err)
    }
}

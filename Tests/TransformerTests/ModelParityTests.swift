import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer

/// Logits of tiny random models against PyTorch `transformers` (scripts/make_transformer_fixtures.py).
final class ModelParityTests: XCTestCase {
    static let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("models")

    static func expected(_ name: String) throws -> (ids: [[Int]], logits: Tensor) {
        let f = try SafetensorsFile(url: dir.appendingPathComponent("\(name)/expected.safetensors"))
        let ids = try f.tensor("input_ids")
        let (B, T) = (ids.shape[0], ids.shape[1])
        let rows = (0..<B).map { b in (0..<T).map { Int(ids.scalars[b * T + $0]) } }
        return (rows, try f.tensor("logits"))
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func check(_ model: TransformerModel, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (ids, want) = try Self.expected(name)
        let got = try model.forward(ids)
        XCTAssertEqual(got.shape, want.shape, file: file, line: line)
        let d = Self.maxAbsDiff(got.scalars, want.scalars)
        print("parity \(name): max abs logit diff \(d)")
        XCTAssertLessThan(d, 1e-4, "\(name): max |logits - transformers| = \(d)", file: file, line: line)
        // Reference values are not trivially small.
        XCTAssertGreaterThan(want.scalars.map(abs).max() ?? 0, 0.5, file: file, line: line)
    }

    func testLogitsMatchTransformers() throws {
        for name in ["llama", "llama3", "mistral", "qwen2", "gpt2", "mistral_window", "qwen3", "gemma2", "gemma3", "phi3", "gemma3_linear"] {
            let model = try TransformerModel.load(path: Self.dir.appendingPathComponent(name).path)
            try check(model, name)
        }
    }

    func testConfigFamilies() throws {
        let l3 = try ModelConfig(configJSON: Self.dir.appendingPathComponent("llama3/config.json"))
        XCTAssertEqual(l3.ropeScaling?.factor, 8)
        XCTAssertTrue(l3.tieEmbeddings && l3.qkvBias && l3.outputBias && l3.mlpBias)
        let q = try ModelConfig(configJSON: Self.dir.appendingPathComponent("qwen2/config.json"))
        XCTAssertTrue(q.qkvBias && !q.outputBias)
        XCTAssertEqual(q.ropeTheta, 1_000_000)
        let m = try ModelConfig(configJSON: Self.dir.appendingPathComponent("mistral/config.json"))
        XCTAssertEqual(m.kvHeads, 1)
        let g = try ModelConfig(configJSON: Self.dir.appendingPathComponent("gpt2/config.json"))
        XCTAssertEqual(g.family, .gpt2)
        XCTAssertEqual(g.activation, .geluTanh)
    }

    func testGGUFModelMatchesTransformers() throws {
        let model = try TransformerModel.load(path: Self.dir.appendingPathComponent("llama_gguf.gguf").path)
        XCTAssertFalse(model.config.tieEmbeddings)
        try check(model, "llama")
    }

    /// Feeding the tokens one at a time through the KV cache gives the full forward's logits.
    func testKVCacheMatchesFullForward() throws {
        for name in ["llama3", "gpt2"] {
            let model = try TransformerModel.load(path: Self.dir.appendingPathComponent(name).path)
            let (ids, _) = try Self.expected(name)
            let full = try model.forward(ids)
            let T = ids[0].count, V = model.config.vocabSize
            let cache = model.makeCache(batch: ids.count, capacity: T)
            // A 4-token prefill, then single tokens.
            var steps: [Range<Int>] = [0..<4]
            for t in 4..<T { steps.append(t..<t + 1) }
            for r in steps {
                let chunk = try model.forward(ids.map { Array($0[r]) }, cache: cache)
                for b in 0..<ids.count {
                    for (j, t) in r.enumerated() {
                        let a = Array(chunk.scalars[(b * r.count + j) * V..<(b * r.count + j + 1) * V])
                        let e = Array(full.scalars[(b * T + t) * V..<(b * T + t + 1) * V])
                        XCTAssertLessThan(Self.maxAbsDiff(a, e), 1e-4, "\(name) b\(b) t\(t)")
                    }
                }
            }
            let last = try model.forward(ids, lastOnly: true)
            for b in 0..<ids.count {
                let e = Array(full.scalars[(b * T + T - 1) * V..<(b * T + T) * V])
                XCTAssertLessThan(Self.maxAbsDiff(Array(last.scalars[b * V..<(b + 1) * V]), e), 1e-5)
            }
        }
    }

    func testGemmMatchesNaive() {
        let M = 5, N = 7, K = 3
        var rng = SystemRandomNumberGenerator()
        let a = (0..<M * K).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<N * K).map { _ in Float.random(in: -1...1, using: &rng) }
        var c1 = [Float](repeating: 0, count: M * N), c2 = c1
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let lda = ta ? M : K, ldb = tb ? K : N
            gemm(transA: ta, transB: tb, M: M, N: N, K: K, A: a, lda: lda, B: b, ldb: ldb, C: &c1, ldc: N)
            gemmNaive(transA: ta, transB: tb, M: M, N: N, K: K, A: a, lda: lda, B: b, ldb: ldb, C: &c2, ldc: N)
            XCTAssertLessThan(Self.maxAbsDiff(c1, c2), 1e-5)
        }
    }

    func testRejectsBadInput() throws {
        let model = try TransformerModel.load(path: Self.dir.appendingPathComponent("llama").path)
        XCTAssertThrowsError(try model.forward([[1, 2], [3]]))
        XCTAssertThrowsError(try model.forward([[model.config.vocabSize]]))
        XCTAssertThrowsError(try model.forward([]))
        let cache = model.makeCache(batch: 1, capacity: 2)
        XCTAssertThrowsError(try model.forward([[1, 2, 3]], cache: cache))
    }
}

final class EvaluationTests: XCTestCase {
    /// Completion NLL equals PyTorch's cross-entropy; the argmax continuation is an exact match.
    func testCompletionNLLAndExactMatch() throws {
        let dir = ModelParityTests.dir
        for name in ["llama", "gpt2"] {
            let model = try TransformerModel.load(path: dir.appendingPathComponent(name).path)
            let f = try SafetensorsFile(url: dir.appendingPathComponent("\(name)/expected.safetensors"))
            let want = try f.tensor("completion_nll").scalars
            let (ids, logits) = try ModelParityTests.expected(name)
            for (b, seq) in ids.enumerated() {
                let r = try Evaluator.evaluate(model: model, tokenized: [(Array(seq[..<4]), Array(seq[4...]))])
                XCTAssertEqual(r.meanNLL, Double(want[b]), accuracy: 1e-4, "\(name) #\(b)")
                XCTAssertEqual(r.perplexity, exp(r.meanNLL), accuracy: 1e-9)
                XCTAssertEqual(r.scoredTokens, seq.count - 4)
                XCTAssertEqual(r.exactMatch, 0)   // random tokens are not the model's greedy choice
            }
            // Greedy continuation of a prompt scores exact match 1.
            let V = model.config.vocabSize, T = ids[0].count
            let prompt = ids[0]
            let next = Sampler.argmax(logits.scalars[(T - 1) * V..<T * V])
            let r = try Evaluator.evaluate(model: model, tokenized: [(prompt, [next])])
            XCTAssertEqual(r.exactMatch, 1)
        }
    }

    func testSamplingIsSeededAndGreedyAtZeroTemperature() {
        let logits: [Float] = [0.1, 2.0, -1.0, 1.9, 0.5]
        var g1 = SeededGenerator(seed: 42), g2 = SeededGenerator(seed: 42)
        let opts = SamplingOptions(temperature: 1.0, topP: 0.9, seed: 42)
        let a = (0..<50).map { _ in Sampler.sample(logits[...], options: opts, using: &g1) }
        let b = (0..<50).map { _ in Sampler.sample(logits[...], options: opts, using: &g2) }
        XCTAssertEqual(a, b)
        XCTAssertTrue(Set(a).isSubset(of: [0, 1, 3, 4]))     // top-p 0.9 drops the least likely token
        XCTAssertGreaterThan(Set(a).count, 1)
        var g3 = SeededGenerator(seed: 1)
        XCTAssertEqual(Sampler.sample(logits[...], options: SamplingOptions(), using: &g3), 1)
        var g4 = SeededGenerator(seed: 1)
        // A tiny nucleus keeps only the argmax.
        XCTAssertEqual(Sampler.sample(logits[...], options: SamplingOptions(temperature: 1, topP: 0.01), using: &g4), 1)
    }

    func testUTF8Streaming() {
        let bytes = Array("a€".utf8)   // 61 E2 82 AC
        XCTAssertEqual(completeUTF8PrefixLength(Array(bytes[..<2])), 1)
        XCTAssertEqual(completeUTF8PrefixLength(Array(bytes[..<3])), 1)
        XCTAssertEqual(completeUTF8PrefixLength(bytes), 4)
    }
}

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
        for name in ["llama", "llama3", "mistral", "qwen2", "gpt2"] {
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

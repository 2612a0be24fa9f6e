import Checkpoints
import Foundation
import Tensors
import Transformer
import XCTest
@testable import Grafting

/// A base/fine-tune pair of parameter buffers with chosen names and values.
struct SyntheticPair {
    let base: ParameterBuffer
    let tuned: ParameterBuffer

    /// `tensors`: name and dims; base values are seeded normals, tuned = base + a delta drawn from
    /// `deltas` (so ties are plentiful), and the embedding (excluded by default) moves the most.
    init(tensors: [(String, [Int])], deltas: [Float], seed: UInt64) {
        var layout = ParameterLayout()
        for (n, d) in tensors { layout.add(n, d) }
        base = ParameterBuffer(layout: layout)
        tuned = ParameterBuffer(layout: layout)
        var rng = SeededRandom(seed: seed)
        for e in layout.entries {
            for i in 0..<e.count {
                let b = Float(rng.nextNormal())
                var d = deltas[Int(rng.next() % UInt64(deltas.count))]
                if e.name.contains("embed") { d *= 100 }
                base.base[e.offset + i] = b
                tuned.base[e.offset + i] = b + d
            }
        }
    }

    func pair(include: String? = nil) throws -> GraftPair {
        try GraftPair(base: base, tuned: tuned, basePath: "base", tunedPath: "tuned", eligibility: GraftEligibility(include: include))
    }
}

let smallTensors: [(String, [Int])] = [
    ("model.embed_tokens.weight", [4, 3]),
    ("model.layers.0.input_layernorm.weight", [3]),
    ("model.layers.0.self_attn.q_proj.weight", [3, 4]),
    ("model.layers.0.mlp.down_proj.weight", [2, 5]),
    ("model.norm.weight", [3]),
]

/// The reference rule, by sorting: |τ| descending, then tensor order, then index.
func bruteForceTopK(_ pair: GraftPair, k: Int) -> [[Int]] {
    var all: [(Float, Int, Int)] = []
    for (j, t) in pair.tensors.enumerated() {
        for i in 0..<t.count {
            all.append(((pair.tuned.base[t.tunedOffset + i] - pair.base.base[t.baseOffset + i]).magnitude, j, i))
        }
    }
    all.sort { a, b in a.0 != b.0 ? a.0 > b.0 : (a.1 != b.1 ? a.1 < b.1 : a.2 < b.2) }
    var out = [[Int]](repeating: [], count: pair.tensors.count)
    for (_, j, i) in all.prefix(k) { out[j].append(i) }
    return out.map { $0.sorted() }
}

final class GraftSelectionTests: XCTestCase {
    func testDefaultEligibilityExcludesEmbeddingsHeadAndNorms() throws {
        let p = try SyntheticPair(tensors: smallTensors, deltas: [0.25], seed: 1).pair()
        XCTAssertEqual(p.tensors.map(\.name), ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"])
        XCTAssertEqual(p.eligibleCount, 22)
        let e = try GraftEligibility()
        for n in ["lm_head.weight", "transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.bias", "transformer.ln_f.weight",
                  "model.layers.3.post_attention_layernorm.weight"] {
            XCTAssertFalse(e.isEligible(n), n)
        }
        XCTAssertTrue(e.isEligible("transformer.h.0.attn.c_attn.bias"))
        XCTAssertEqual(try SyntheticPair(tensors: smallTensors, deltas: [0.25], seed: 1).pair(include: "embed|down_proj").tensors.map(\.name),
                       ["model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight"])
    }

    /// Every k on a pair full of ties (five distinct |τ| values over 22 entries), and the
    /// embedding, whose |τ| is 100 times larger, never selected.
    func testTopKMatchesBruteForceWithTiesForEveryK() throws {
        let p = try SyntheticPair(tensors: smallTensors, deltas: [0, 0.125, -0.125, 0.5, -0.25, 0.25, 1, -1], seed: 7).pair()
        for k in 1...p.eligibleCount {
            let m = MagnitudeGraft.select(p, count: k)
            XCTAssertEqual(m.count, k)
            XCTAssertEqual(m.parts.map(\.indices), bruteForceTopK(p, k: k), "k = \(k)")
        }
        // Ties go to the earlier tensor: q_proj comes before down_proj in layout order.
        let bigTies = MagnitudeGraft.select(p, count: 1)
        XCTAssertEqual(bigTies.parts[1].indices, [], "with a tie at the top, the first tensor's entry wins")
    }

    /// Values that share their top 16 bits (1 + j·2⁻²⁰) exercise the second radix pass; several
    /// counts selected at once share the first histogram.
    func testTopKMatchesBruteForceWithinOneHighBucket() throws {
        let deltas = (0..<40).map { Float(1) + Float($0 % 13) * Float(1.0 / 1_048_576) }
        let tensors: [(String, [Int])] = [("model.layers.0.mlp.up_proj.weight", [16, 9]), ("model.layers.1.mlp.up_proj.weight", [7, 11])]
        let s = SyntheticPair(tensors: tensors, deltas: deltas + [0.5, -2, 0], seed: 3)
        let p = try s.pair()
        let ks = [1, 2, 5, 17, 64, 100, 150, p.eligibleCount - 1, p.eligibleCount]
        let masks = MagnitudeGraft.select(p, counts: ks)
        for (k, m) in zip(ks, masks) {
            XCTAssertEqual(m.parts.map(\.indices), bruteForceTopK(p, k: k), "k = \(k)")
        }
    }

    func testKeptCountRounds() throws {
        let p = try SyntheticPair(tensors: smallTensors, deltas: [0.25], seed: 1).pair()
        XCTAssertEqual(try p.keptCount(sparsity: 0.1), 2)      // 2.2
        XCTAssertEqual(try p.keptCount(sparsity: 0.25), 6)     // 5.5 rounds away from zero
        XCTAssertEqual(try p.keptCount(sparsity: 1), 22)
    }
}

final class GraftModelTests: XCTestCase {
    func testGraftedModelIsBaseExceptAtExactlyKEntriesWhereItIsTuned() throws {
        let s = SyntheticPair(tensors: smallTensors, deltas: [0.125, -0.5, 0.25, 1, -1, 2], seed: 11)
        let p = try s.pair()
        for k in [1, 5, 13] {
            let m = MagnitudeGraft.select(p, count: k)
            let out = ParameterBuffer(layout: s.base.layout)
            m.materialize(into: out, pair: p)
            var kept = Set<Int>()
            for (part, t) in zip(m.parts, p.tensors) { for i in part.indices { kept.insert(t.baseOffset + i) } }
            XCTAssertEqual(kept.count, k)
            var differing = 0
            for i in 0..<s.base.layout.totalCount {
                if kept.contains(i) {
                    XCTAssertEqual(out.base[i].bitPattern, s.tuned.base[i].bitPattern)
                } else {
                    XCTAssertEqual(out.base[i].bitPattern, s.base.base[i].bitPattern)
                }
                if out.base[i] != s.base.base[i] { differing += 1 }
            }
            XCTAssertEqual(differing, k, "every delta is non-zero, so exactly k entries differ from the base")
            // In place: the same values while applied, the base restored bit for bit after.
            let before = Array(UnsafeBufferPointer(start: s.base.base, count: s.base.layout.totalCount))
            m.withApplied(to: s.base, pair: p) {
                for i in 0..<s.base.layout.totalCount { XCTAssertEqual(s.base.base[i].bitPattern, out.base[i].bitPattern) }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: s.base.base, count: s.base.layout.totalCount)), before)
        }
    }

    func testSparsityOneIsTheFineTuneOnEligibleTensorsAndEmptyIsTheBase() throws {
        let s = SyntheticPair(tensors: smallTensors, deltas: [0.125, -0.5, 0.25, 1, -1, 2, 0], seed: 5)
        let p = try s.pair()
        let m = MagnitudeGraft.select(p, count: try p.keptCount(sparsity: 1))
        XCTAssertEqual(m, GraftMask(full: p))
        let out = ParameterBuffer(layout: s.base.layout)
        m.materialize(into: out, pair: p)
        for e in s.base.layout.entries {
            let eligible = p.tensors.contains { $0.name == e.name }
            for i in 0..<e.count {
                let want = eligible ? s.tuned.base[e.offset + i] : s.base.base[e.offset + i]
                XCTAssertEqual(out.base[e.offset + i].bitPattern, want.bitPattern, "\(e.name)[\(i)]")
            }
        }
        XCTAssertEqual(m.energy(p), p.totalEnergy(), accuracy: 1e-12)
        GraftMask(empty: p).materialize(into: out, pair: p)
        for i in 0..<s.base.layout.totalCount { XCTAssertEqual(out.base[i].bitPattern, s.base.base[i].bitPattern) }
        // With every tensor eligible, sparsity 1 is the fine-tune everywhere.
        let all = try s.pair(include: ".")
        MagnitudeGraft.select(all, count: all.eligibleCount).materialize(into: out, pair: all)
        for i in 0..<s.base.layout.totalCount { XCTAssertEqual(out.base[i].bitPattern, s.tuned.base[i].bitPattern) }
    }

    func testSparseDeltaRoundTripsAndSizeFollowsK() throws {
        let s = SyntheticPair(tensors: [("model.layers.0.mlp.up_proj.weight", [64, 50]), ("model.layers.0.mlp.down_proj.weight", [50, 64])],
                              deltas: [0.001, -0.02, 0.3, -0.7, 0.05], seed: 9)
        let p = try s.pair()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-graft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var sizes: [Int] = []
        for k in [10, 1000, 2000] {
            let m = MagnitudeGraft.select(p, count: k)
            let url = dir.appendingPathComponent("g\(k).safetensors")
            try m.writeSparseDelta(p, to: url, metadata: ["weightsmith.graft.k": "\(k)"])
            sizes.append(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int)
            let f = try SparseDeltaFile(path: url.path)
            XCTAssertEqual(f.file.metadata["weightsmith.graft.k"], "\(k)")
            var total = 0
            for (part, t) in zip(m.parts, p.tensors) where !part.indices.isEmpty {
                let d = try f.sparse(part.name)
                XCTAssertEqual(d.shape.dims, t.dims)
                XCTAssertEqual(d.indices, part.indices.map { Int64($0) })
                for (i, v) in zip(part.indices, d.values) {
                    let b = s.base.base[t.baseOffset + i], tu = s.tuned.base[t.tunedOffset + i]
                    XCTAssertEqual(v.bitPattern, (tu - b).bitPattern)
                    // base + delta is the fine-tune up to one rounding.
                    XCTAssertEqual(b + v, tu, accuracy: tu.magnitude.ulp * 2 + Float.leastNormalMagnitude)
                }
                total += d.indices.count
            }
            XCTAssertEqual(total, k)
        }
        XCTAssertEqual(Double(sizes[2] - sizes[1]), 1000 * 12, accuracy: 64)  // 8 index + 4 value bytes per entry
        XCTAssertLessThan(sizes[0], 1000)
    }
}

final class GraftErrorTests: XCTestCase {
    func testBadSparsities() throws {
        let p = try SyntheticPair(tensors: smallTensors, deltas: [0.25], seed: 1).pair()
        for s in [0, -0.1, 1.5, Double.nan, Double.infinity] {
            XCTAssertThrowsError(try p.keptCount(sparsity: s)) { e in
                guard case GraftError.invalidSparsity = e else { return XCTFail("\(e)") }
            }
        }
        XCTAssertThrowsError(try p.keptCount(sparsity: 0.01)) { e in
            XCTAssertEqual(e as? GraftError, .emptyGraft(sparsity: 0.01, eligible: 22))
            XCTAssertTrue("\(e)".contains("22 eligible"))
        }
    }

    func testShapeMismatchAndMissingTensorsNameTheFileAndTensor() throws {
        var a = ParameterLayout(); a.add("model.layers.0.mlp.up_proj.weight", [4, 3]); a.add("model.layers.0.mlp.down_proj.weight", [3, 4])
        var b = ParameterLayout(); b.add("model.layers.0.mlp.up_proj.weight", [4, 3]); b.add("model.layers.0.mlp.down_proj.weight", [4, 3])
        var c = ParameterLayout(); c.add("model.layers.0.mlp.up_proj.weight", [4, 3])
        var d = a; d.add("model.layers.0.extra.weight", [2])
        let e = try GraftEligibility()
        func pair(_ x: ParameterLayout, _ y: ParameterLayout) throws -> GraftPair {
            try GraftPair(base: ParameterBuffer(layout: x), tuned: ParameterBuffer(layout: y), basePath: "b/model", tunedPath: "t/model", eligibility: e)
        }
        XCTAssertThrowsError(try pair(a, b)) { err in
            XCTAssertEqual(err as? GraftError, .shapeMismatch(tensor: "model.layers.0.mlp.down_proj.weight", basePath: "b/model", baseShape: [3, 4], tunedPath: "t/model", tunedShape: [4, 3]))
            XCTAssertTrue("\(err)".contains("model.layers.0.mlp.down_proj.weight") && "\(err)".contains("t/model"))
        }
        XCTAssertThrowsError(try pair(a, c)) { err in
            XCTAssertEqual(err as? GraftError, .missingTensor(path: "t/model", tensor: "model.layers.0.mlp.down_proj.weight"))
        }
        XCTAssertThrowsError(try pair(a, d)) { err in
            XCTAssertEqual(err as? GraftError, .missingTensor(path: "b/model", tensor: "model.layers.0.extra.weight"))
        }
    }

    func testNonFiniteValuesEligibilityAndPatternErrors() throws {
        let s = SyntheticPair(tensors: smallTensors, deltas: [0.25], seed: 1)
        let q = s.tuned.pointer("model.layers.0.mlp.down_proj.weight")
        q[3] = .nan
        XCTAssertThrowsError(try s.pair()) { err in
            XCTAssertEqual(err as? GraftError, .nonFinite(path: "tuned", tensor: "model.layers.0.mlp.down_proj.weight", index: 3))
        }
        q[3] = 0
        // A NaN in an excluded tensor does not matter (it is never read).
        s.tuned.pointer("model.norm.weight")[0] = .infinity
        XCTAssertNoThrow(try s.pair())
        XCTAssertThrowsError(try s.pair(include: "nothing-matches")) { err in
            guard case GraftError.noEligibleTensors = err else { return XCTFail("\(err)") }
        }
        XCTAssertThrowsError(try GraftEligibility(include: "(unclosed")) { err in
            guard case GraftError.invalidPattern(pattern: "(unclosed", _) = err else { return XCTFail("\(err)") }
        }
        let long = String(repeating: "(a)", count: 1_400)
        XCTAssertThrowsError(try GraftEligibility(include: long)) { err in
            guard case let GraftError.invalidPattern(pattern: p, reason: r) = err else { return XCTFail("\(err)") }
            XCTAssertEqual(p, long)
            XCTAssertEqual(r, "is 4200 characters long; at most 4096 are accepted")
            XCTAssertLessThan("\(err)".count, 200, "the message quotes only a prefix of the pattern")
        }
    }
}

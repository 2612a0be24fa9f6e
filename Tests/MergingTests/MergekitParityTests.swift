import Checkpoints
import Foundation
import XCTest
@testable import Merging
import Tensors

/// Every recipe in fixtures/merge/mergekit (mergekit's example recipes rewritten for the fixture
/// models, and one per method added since the first comparison) merged by weightsmith equals
/// what mergekit-yaml 0.1.5 wrote for it (scripts/make_mergekit_parity.py), tensor by tensor:
/// max|ours − mergekit| ≤ 1e-6 · max|mergekit|, same names, same shapes.
final class MergekitParityTests: XCTestCase {
    static let root = Binary.root
    static let folder = root.appendingPathComponent("fixtures/merge/mergekit")
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-mkparity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static func recipes() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yml") }.sorted()
            .map { String($0.dropLast(4)) }
    }

    /// Merges the recipe `name` (its fixture paths made absolute) into a new folder.
    func merge(_ name: String) throws -> Checkpoint {
        let text = try String(contentsOf: Self.folder.appendingPathComponent(name + ".yml"), encoding: .utf8)
            .replacingOccurrences(of: "fixtures/merge/", with: Self.root.path + "/fixtures/merge/")
        let plan = try MergePlanner.plan(RecipeParser.parse(text))
        XCTAssertEqual(plan.problems, [], name)
        let out = dir.appendingPathComponent(name)
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false))
        return try Checkpoint(path: out.path)
    }

    func testEveryRecipeMatchesMergekit() throws {
        let names = try Self.recipes()
        // The five methods added with this test, their variants, and mergekit's six examples.
        XCTAssertGreaterThanOrEqual(names.count, 12)
        for example in ["arcee_fusion", "bio-merge", "gradient-slerp", "linear", "orcamini-platy-44layer", "ties"] {
            XCTAssertTrue(names.contains("example-" + example), example)
        }
        for name in names where !name.contains("arcee_fusion") {
            let ours = try merge(name)
            let theirs = try Checkpoint(path: Self.folder.appendingPathComponent(name).path)
            XCTAssertEqual(Set(ours.tensorNames), Set(theirs.tensorNames), name)
            var changed = 0
            for t in theirs.tensorNames {
                let a = try ours.tensor(t), e = try theirs.tensor(t)
                XCTAssertEqual(a.shape, e.shape, "\(name) \(t)")
                let scale = e.scalars.reduce(Float(0)) { max($0, abs($1)) }
                let worst = zip(a.scalars, e.scalars).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                XCTAssertLessThanOrEqual(worst, 1e-6 * max(scale, 1e-30), "\(name) \(t)")
                changed += e.scalars.count
            }
            XCTAssertGreaterThan(changed, 0, name)
        }
    }

    /// `arcee_fusion` keeps a change when its importance |Δ|·KL reaches Tukey's fence. mergekit
    /// computes the KL in float32, whose rounding (~1e-4 relative: it is a sum of p·log(p/q) with
    /// p ≈ q) can decide an element lying that close to the fence the other way; weightsmith
    /// computes it in Float64. Every element is either equal to mergekit's (to 1e-6), or is such a
    /// borderline element, and then it is exactly the base or exactly the other model's value.
    func testArceeFusionMatchesMergekitExceptAtTheFence() throws {
        let base = try Checkpoint(path: Self.root.appendingPathComponent("fixtures/merge/base").path)
        let other = try Checkpoint(path: Self.root.appendingPathComponent("fixtures/merge/ft-a").path)
        for name in try Self.recipes() where name.contains("arcee_fusion") {
            let ours = try merge(name)
            let theirs = try Checkpoint(path: Self.folder.appendingPathComponent(name).path)
            XCTAssertEqual(Set(ours.tensorNames), Set(theirs.tensorNames), name)
            var borderline = 0, kept = 0, total = 0
            for t in theirs.tensorNames {
                let a = try ours.tensor(t).scalars, e = try theirs.tensor(t).scalars
                let b = try base.tensor(t), x = try other.tensor(t)
                let cols = b.shape.dims.last ?? b.scalars.count
                let importance = b.scalars.withUnsafeBufferPointer { bp in
                    x.scalars.withUnsafeBufferPointer { ArceeFusionMerge.importance(base: bp, other: $0, cols: cols) }
                }
                let fence = importance.withUnsafeBufferPointer { ArceeFusionMerge.threshold($0) }
                for j in a.indices {
                    total += 1
                    if a[j] != b.scalars[j] { kept += 1 }
                    if abs(a[j] - e[j]) <= 1e-6 * max(abs(e[j]), 1) { continue }
                    borderline += 1
                    XCTAssertLessThan(abs(importance[j] - fence), 1e-3 * fence, "\(name) \(t)[\(j)]: not at the fence")
                    XCTAssertTrue(a[j] == b.scalars[j] || a[j] == b.scalars[j] + (x.scalars[j] - b.scalars[j]), "\(name) \(t)[\(j)]")
                }
            }
            // A handful of elements out of 106,816 at most, and the method changed a few percent.
            XCTAssertLessThanOrEqual(borderline, 8, name)
            XCTAssertGreaterThan(kept, total / 100, name)
            XCTAssertLessThan(kept, total / 4, name)
        }
    }

    /// The fence on values whose order statistics are known.
    func testArceeFusionFence() {
        // 0, 1, ..., 100: Q1 = 25, median 50, Q3 = 75 -> 50 + 1.5 * 50 = 125.
        let values = (0...100).map { Float($0) }.shuffled()
        XCTAssertEqual(values.withUnsafeBufferPointer { ArceeFusionMerge.threshold($0) }, 125)
        // n = 10: indices ⌊0.25·9⌋ = 2, ⌊4.5⌋ = 4, ⌊6.75⌋ = 6 of the sorted values.
        let ten: [Float] = [9, 3, 7, 1, 5, 0, 8, 2, 6, 4]
        XCTAssertEqual(ten.withUnsafeBufferPointer { ArceeFusionMerge.threshold($0) }, 4 + 1.5 * (6 - 2))
    }
}

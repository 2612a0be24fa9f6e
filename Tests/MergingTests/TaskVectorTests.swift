import Checkpoints
import Foundation
import XCTest
@testable import Merging
import Tensors

final class TaskVectorTests: XCTestCase {
    func testExpressionParsing() throws {
        let t = try CompositionExpression.parse("0.7*math + 0.5 * code - 0.3*toxic")
        XCTAssertEqual(t.map(\.name), ["math", "code", "toxic"])
        XCTAssertEqual(t.map(\.coefficient), [0.7, 0.5, -0.3])
        XCTAssertEqual(try CompositionExpression.parse("-ft-a + 2e-1*b*2").map(\.coefficient), [-1, 0.4])
        XCTAssertEqual(try CompositionExpression.parse("-ft-a").map(\.name), ["ft-a"])
    }

    /// Unary minus anywhere, parentheses, division by numbers, repeated names combined.
    func testExpressionGrammar() throws {
        func parsed(_ e: String) throws -> [String: Double] {
            Dictionary(uniqueKeysWithValues: try CompositionExpression.parse(e).map { ($0.name, $0.coefficient) })
        }
        XCTAssertEqual(try parsed("-0.5*cap + prof"), ["cap": -0.5, "prof": 1])
        XCTAssertEqual(try parsed("cap + 0.5 * (prof + cont)"), ["cap": 1, "prof": 0.5, "cont": 0.5])
        XCTAssertEqual(try parsed("cap - 0.5*(prof - cont)"), ["cap": 1, "prof": -0.5, "cont": 0.5])
        XCTAssertEqual(try parsed("-(a + 3*b)/2"), ["a": -0.5, "b": -1.5])
        XCTAssertEqual(try parsed("(a - b) * -2"), ["a": -2, "b": 2])
        XCTAssertEqual(try parsed("2 * (3 * (a))"), ["a": 6])
        XCTAssertEqual(try parsed("- - a"), ["a": 1])
        XCTAssertEqual(try parsed("(2 - 0.5) * a"), ["a": 1.5])
        XCTAssertEqual(try parsed("a + 0.5*(a + b)"), ["a": 1.5, "b": 0.5])
        XCTAssertEqual(try parsed("ft-a - ft-b"), ["ft-a": 1, "ft-b": -1])
        XCTAssertEqual(try parsed(".5e1*x"), ["x": 5])
        // Order of first appearance; position of the first occurrence.
        let t = try CompositionExpression.parse("(b + a) + 2*b")
        XCTAssertEqual(t.map(\.name), ["b", "a"])
        XCTAssertEqual(t.map(\.coefficient), [3, 1])
        XCTAssertEqual(t.map(\.position), [1, 5])
    }

    func testExpressionGrammarErrors() {
        func error(_ e: String) -> (Int, String)? {
            do { _ = try CompositionExpression.parse(e); return nil } catch let MergeError.invalidExpression(_, p, r) { return (p, r) } catch { return nil }
        }
        let cases: [(String, Int, String)] = [
            ("cap + 0.5 * (prof + cont", 24, "the \"(\" at column 13 is not closed"),
            ("cap + prof)", 10, "unmatched \")\""),
            ("cap + ()", 7, "before \")\""),
            ("cap + 1", 6, "a number cannot be added to a model"),
            ("2 + cap", 0, "a number cannot be added to a model"),
            ("a * (b + c)", 4, "a product of two models"),
            ("a / b", 4, "cannot divide by a model"),
            ("a / (1 - 1)", 4, "division by zero"),
            ("2 * 3", 0, "names no model"),
            ("a $ b", 2, "expected an operator"),
            ("a + #", 4, "found \"#\""),
            ("1e308 * 1e308 * a", 16, "not finite"),
            (String(repeating: "(", count: 70) + "a" + String(repeating: ")", count: 70), 64, "nested too deeply"),
        ]
        for (e, p, r) in cases {
            guard let (gp, gr) = error(e) else { XCTFail("\(e): no error"); continue }
            XCTAssertEqual(gp, p, "\(e): \(gr)")
            XCTAssertTrue(gr.contains(r), "\(e): \(gr)")
        }
        // The message shows the column (1-based) and a caret under it.
        let m = MergeError.invalidExpression(expression: "a + 1", position: 4, reason: "r").description
        XCTAssertEqual(m, "r at column 5:\n  a + 1\n      ^")
    }

    func testExpressionErrorsPointAtTheProblem() {
        func position(_ e: String) -> Int? {
            do { _ = try CompositionExpression.parse(e); return nil } catch let MergeError.invalidExpression(_, p, _) { return p } catch { return nil }
        }
        XCTAssertEqual(position("0.7*math +"), 10)
        XCTAssertEqual(position("0.7*math 0.5*code"), 9)
        XCTAssertEqual(position("math + 2"), 7)
        XCTAssertEqual(position("0.7*"), 4)
        XCTAssertEqual(position(""), 0)
        XCTAssertEqual(position("a * x"), 4)
    }

    func testExtractAndComposeRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func model(_ name: String, _ values: [Float]) throws -> String {
            let d = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            let w = try SafetensorsWriter(url: d.appendingPathComponent("model.safetensors"), entries: [TensorEntry(name: "w", dtype: .f32, shape: [4])])
            try w.write("w", Tensor(shape: [4], scalars: values))
            try w.finish()
            return d.path
        }
        let base = try model("base", [1, 2, 3, 4])
        let a = try model("a", [2, 2, 1, 4.5])
        let b = try model("b", [1, 3, 3, 4])
        let tv = dir.appendingPathComponent("tv")
        var options = ExecutionOptions(hashInputs: false, progress: false)
        options.metadata = [TaskVectors.kindKey: TaskVectors.kindValue]
        _ = try MergeExecutor.run(try TaskVectors.extractPlan(base: base, tuned: a, topK: 0.5), to: tv, options: options)
        let stored = try Checkpoint(path: tv.path)
        XCTAssertTrue(TaskVectors.isTaskVector(stored))
        XCTAssertEqual(try stored.tensor("w").scalars, [1, 0, -2, 0])  // top 2 of |[1, 0, -2, 0.5]|
        let plan = try TaskVectors.composePlan(base: base, expression: "0.5*ta - 2*b", models: ["ta": tv.path, "b": b])
        XCTAssertEqual(plan.problems, [])
        XCTAssertEqual(plan.jobs[0].models.map(\.kind), [.delta, .weights])
        let out = dir.appendingPathComponent("out")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        // base + 0.5·[1, 0, −2, 0] − 2·[0, 1, 0, 0]
        XCTAssertEqual(try Checkpoint(path: out.path).tensor("w").scalars, [1.5, 0, 2, 4])
        XCTAssertThrowsError(try TaskVectors.composePlan(base: base, expression: "x", models: [:]))
    }
    /// Sparse deltas (graft or LT-SFT outputs) as compose terms: read as BASE+DELTA, so two
    /// disjoint deltas compose to base + φ1 + φ2, entries outside both stay the base bit for bit,
    /// and a coefficient scales a delta.
    func testSparseDeltasComposeToTheirSum() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("base")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let bw: [Float] = [1, 2.5, -3, 4.25, 0.1, -7], bv: [Float] = [0.3, -0.6]
        let w = try SafetensorsWriter(url: base.appendingPathComponent("model.safetensors"),
                                      entries: [TensorEntry(name: "w", dtype: .f32, shape: [2, 3]), TensorEntry(name: "v", dtype: .f32, shape: [2])])
        try w.write("w", Tensor(shape: [2, 3], scalars: bw))
        try w.write("v", Tensor(shape: [2], scalars: bv))
        try w.finish()
        let a = dir.appendingPathComponent("a.safetensors"), b = dir.appendingPathComponent("b.safetensors")
        try SparseDeltaWriter.write([SparseDeltaTensor(name: "w", shape: [2, 3], dtype: .f32, indices: [0, 4], values: [0.5, -0.25])], to: a)
        try SparseDeltaWriter.write([SparseDeltaTensor(name: "v", shape: [2], dtype: .f32, indices: [1], values: [2]),
                                     SparseDeltaTensor(name: "w", shape: [2, 3], dtype: .f32, indices: [5], values: [1])], to: b)
        func compose(_ e: String) throws -> Checkpoint {
            let out = dir.appendingPathComponent("out-\(UUID().uuidString)")
            let plan = try TaskVectors.composePlan(base: base.path, expression: e, models: ["a": a.path, "b": b.path])
            XCTAssertEqual(plan.problems, [])
            _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
            return try Checkpoint(path: out.path)
        }
        let sum = try compose("a + b")
        XCTAssertEqual(try sum.tensor("w").scalars.map(\.bitPattern), [1 + 0.5, 2.5, -3, 4.25, 0.1 - 0.25, -7 + 1].map { Float($0).bitPattern })
        XCTAssertEqual(try sum.tensor("v").scalars.map(\.bitPattern), [Float(0.3), -0.6 + 2].map(\.bitPattern))
        let half = try compose("0.5*a")
        // Scaled, (base + φ) − base is rounded once more: equal to base + 0.5 φ up to Float32 rounding.
        for (got, want) in zip(try half.tensor("w").scalars, [1.25, 2.5, -3, 4.25, Float(0.1) - 0.125, -7]) {
            XCTAssertEqual(got, want, accuracy: 1e-7 * max(1, abs(want)))
        }
        XCTAssertEqual(try half.tensor("w").scalars[1...3], [2.5, -3, 4.25])
        XCTAssertEqual(try half.tensor("v").scalars, bv)
    }
}

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

    func testExpressionErrorsPointAtTheProblem() {
        func position(_ e: String) -> Int? {
            do { _ = try CompositionExpression.parse(e); return nil } catch let MergeError.invalidExpression(_, p, _) { return p } catch { return nil }
        }
        XCTAssertEqual(position("0.7*math +"), 10)
        XCTAssertEqual(position("0.7*math 0.5*code"), 9)
        XCTAssertEqual(position("math + math"), 7)
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
}

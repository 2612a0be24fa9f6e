import Checkpoints
import Foundation
import XCTest
@testable import Merging

/// Multi-document recipes (mergekit-multi): parsing, order, errors, and the `merge` command on
/// the committed recipe against mergekit-multi's output (fixtures/merge/mergekit/multi).
final class MultiRecipeTests: XCTestCase {
    static let root = Binary.root

    func testDocumentsRunInDependencyOrder() throws {
        // The final merge first in the file, and "b" before the "a" it needs.
        let text = """
        merge_method: linear
        models: [{model: b, parameters: {weight: 1}}, {model: x, parameters: {weight: 1}}]
        ---
        name: b
        merge_method: slerp
        base_model: a
        models: [{model: y}]
        parameters: {t: 0.5}
        ---
        # a comment
        name: a
        merge_method: linear
        models: [{model: x, parameters: {weight: 1}}, {model: y, parameters: {weight: 1}}]
        """
        let m = try MultiRecipe.parse(text, file: "m.yml")
        XCTAssertTrue(m.isMulti)
        XCTAssertEqual(m.documents.map { $0.name ?? "-" }, ["a", "b", "-"])
        XCTAssertEqual(m.documents.map(\.line), [10, 4, 1])
        XCTAssertEqual(m.documents[1].dependencies, ["a"])
        XCTAssertEqual(m.documents[2].dependencies, ["b"])
        // Each document keeps its own text (copied into its output), without the others.
        XCTAssertFalse(m.documents[0].recipe.text!.contains("slerp"))
        let sub = MultiRecipe.substituting(m.documents[1].recipe, ["a": "/tmp/out-a"])
        XCTAssertEqual(sub.baseModel, "/tmp/out-a")
        XCTAssertEqual(sub.models?.map(\.model), ["y"])
    }

    func testSingleDocumentIsAPlainRecipe() throws {
        let m = try MultiRecipe.parse("---\nmerge_method: linear\nmodels: [{model: x, parameters: {weight: 1}}]\n")
        XCTAssertFalse(m.isMulti)
        XCTAssertEqual(m.documents.count, 1)
    }

    func testErrors() {
        func error(_ text: String) -> String {
            do { _ = try MultiRecipe.parse(text, file: "m.yml"); return "" } catch { return String(describing: error) }
        }
        let doc = { (name: String?, input: String) in
            (name.map { "name: \($0)\n" } ?? "") + "merge_method: linear\nmodels: [{model: \(input), parameters: {weight: 1}}]\n"
        }
        XCTAssertTrue(error(doc("a", "x") + "---\n" + doc("a", "y")).contains("\"a\" names two documents"))
        XCTAssertTrue(error(doc(nil, "x") + "---\n" + doc(nil, "y")).contains("only one document may lack a name"))
        XCTAssertTrue(error(doc("a", "b") + "---\n" + doc("b", "a")).contains("cycle"))
        XCTAssertTrue(error(doc("a", "a") + "---\n" + doc(nil, "a")).contains("its own output"))
        let bad = error(doc("a", "x") + "---\nname: b\nmerge_method: linear\nmodels: [{model: a, parameters: {wieght: 1}}]\n")
        XCTAssertTrue(bad.contains("m.yml:7") && bad.contains("wieght"), bad)
        XCTAssertTrue(error("name: a/b\n" + doc(nil, "x")).contains("without \"/\""))
    }

    func run(_ args: [String]) throws -> Binary.Run { try Binary.run(args) }

    func assertMatchesMergekit(_ folder: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let ours = try Checkpoint(path: folder.path)
        let theirs = try Checkpoint(path: Self.root.appendingPathComponent("fixtures/merge/mergekit/multi").path)
        XCTAssertEqual(Set(ours.tensorNames), Set(theirs.tensorNames), file: file, line: line)
        for t in theirs.tensorNames {
            let a = try ours.tensor(t).scalars, e = try theirs.tensor(t).scalars
            let scale = e.reduce(Float(0)) { max($0, abs($1)) }
            let worst = zip(a, e).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            XCTAssertLessThanOrEqual(worst, 1e-6 * scale, t, file: file, line: line)
        }
    }

    func testMergeCommandMatchesMergekitMulti() throws {
        try Binary.requireBuilt()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-multi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        let recipe = "fixtures/merge/mergekit/multi/recipe.yaml"

        // Intermediates in a hidden folder beside OUT, removed at the end.
        let out = tmp.appendingPathComponent("final")
        var r = try run(["merge", recipe, out.path, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        try assertMatchesMergekit(out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains("intermediates") }, [])
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("merge_recipe.yml"), encoding: .utf8).contains("second-merge"))

        // --intermediate-dir keeps them and reuses them on a rerun.
        let inter = tmp.appendingPathComponent("inter")
        r = try run(["merge", recipe, tmp.appendingPathComponent("f2").path, "--intermediate-dir", inter.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: inter.path)), ["first-merge", "second-merge"])
        r = try run(["merge", recipe, tmp.appendingPathComponent("f3").path, "--intermediate-dir", inter.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("first-merge: reused") && r.err.contains("second-merge: reused"), r.err)
        try assertMatchesMergekit(tmp.appendingPathComponent("f3"))

        // An output inside an input is refused before anything is created there.
        let inputDir = Self.root.appendingPathComponent("fixtures/merge/ft-a")
        let before = try FileManager.default.contentsOfDirectory(atPath: inputDir.path).sorted()
        r = try run(["merge", recipe, "fixtures/merge/ft-a/merged", "--quiet"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("ft-a"), r.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: inputDir.path).sorted(), before)

        // The dry run lists the order.
        r = try run(["merge", recipe, "--dry-run"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("document 1 of 3: first-merge") && r.out.contains("document 3 of 3: final merge") && r.out.contains("takes the output of second-merge"), r.out)

        // Every document named: OUT/NAME for each.
        let text = try String(contentsOf: Self.root.appendingPathComponent(recipe), encoding: .utf8)
            .replacingOccurrences(of: "# the final merge (no name)\n", with: "name: third\n")
        let named = tmp.appendingPathComponent("named.yml")
        try Data(text.utf8).write(to: named)
        let all = tmp.appendingPathComponent("all")
        r = try run(["merge", named.path, all.path, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: all.path).filter { !$0.hasPrefix(".") }),
                       ["first-merge", "second-merge", "third"])
        try assertMatchesMergekit(all.appendingPathComponent("third"))
    }
}

import Foundation
@testable import Merging
import XCTest

/// Bad recipes on the committed fixture family (fixtures/family): every out-of-range parameter
/// the methods declare, and DELLA's density ± epsilon, is a pre-flight problem naming the
/// parameter and the model (or the method, for a global parameter), found by the planner before
/// any tensor is read.
final class ParameterValidationTableTests: XCTestCase {
    static let family = Binary.root.appendingPathComponent("fixtures/family")
    let base = family.appendingPathComponent("base").path
    let capital = family.appendingPathComponent("capital-full").path
    let profession = family.appendingPathComponent("profession-full").path

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: base + "/model.safetensors") else { throw XCTSkip("fixtures/family is missing") }
    }

    /// `merge_method: m`, base `base`, capital and profession with the given parameter maps.
    func recipe(_ method: String, _ capitalParams: String, _ professionParams: String = "{weight: 1}", global: String? = nil) -> String {
        var y = "merge_method: \(method)\nbase_model: \(base)\nmodels:\n"
        y += "  - model: \(capital)\n    parameters: \(capitalParams)\n"
        if !professionParams.isEmpty { y += "  - model: \(profession)\n    parameters: \(professionParams)\n" }
        if let global { y += "parameters:\n  \(global)\n" }
        return y
    }

    func problems(_ yaml: String) throws -> [String] { try MergePlanner.plan(RecipeParser.parse(yaml)).problems }

    struct Row { var what: String; var yaml: String; var fragments: [String] }

    /// (recipe, fragments the single problem must contain: the quoted parameter, the model or
    /// method it belongs to, and why).
    var badRows: [Row] {
        [
            Row(what: "della epsilon above the density", yaml: recipe("della", "{weight: 1, density: 0.1, epsilon: 0.2}", "{weight: 1, density: 0.5}"),
                fragments: ["parameter \"epsilon\" for model \(capital)", "is 0.2 with density 0.1", "[-0.1, 0.3]", "(0, 1]", "below the density"]),
            Row(what: "della epsilon equal to the density (a keep probability of 0)",
                yaml: recipe("della_linear", "{weight: 1, density: 0.3, epsilon: 0.3}", "{weight: 1, density: 0.5, epsilon: 0.1}"),
                fragments: ["parameter \"epsilon\" for model \(capital)", "[0, 0.6]", "below the density"]),
            Row(what: "della default epsilon 0.15 with density 0.9", yaml: recipe("della", "{weight: 1, density: 0.5}", "{weight: 1, density: 0.9}"),
                fragments: ["parameter \"epsilon\" for model \(profession)", "is 0.15 with density 0.9", "[0.75, 1.05]", "at most 1 − density = 0.1"]),
            Row(what: "della epsilon from a global parameter", yaml: recipe("della", "{weight: 1, density: 0.6}", "{weight: 1, density: 0.5}", global: "epsilon: 0.45"),
                fragments: ["parameter \"epsilon\" for model \(capital)", "[0.15, 1.05]"]),
            Row(what: "della epsilon gradient leaving the range at the last layer",
                yaml: recipe("della", "{weight: 1, density: 0.5, epsilon: [0.1, 0.6]}", "{weight: 1, density: 0.5}"),
                fragments: ["parameter \"epsilon\" for model \(capital)", "is 0.6 with density 0.5"]),
            Row(what: "della epsilon 1 (its own range)", yaml: recipe("della", "{weight: 1, density: 0.5, epsilon: 1}"),
                fragments: ["parameter \"epsilon\" for model \(capital) is 1; it must be in [0, 1)"]),
            Row(what: "della density 0 (its own range, not also an epsilon problem)", yaml: recipe("della", "{weight: 1, density: 0}"),
                fragments: ["parameter \"density\" for model \(capital) is 0; it must be in (0, 1]"]),
            Row(what: "ties density 0", yaml: recipe("ties", "{weight: 1, density: 0}"),
                fragments: ["parameter \"density\" for model \(capital) is 0; it must be in (0, 1]"]),
            Row(what: "dare_ties density -0.5", yaml: recipe("dare_ties", "{weight: 1, density: 0.5}", "{weight: 1, density: -0.5}"),
                fragments: ["parameter \"density\" for model \(profession) is -0.5; it must be in (0, 1]"]),
            Row(what: "task_arithmetic density 1.5", yaml: recipe("task_arithmetic", "{weight: 1, density: 1.5}"),
                fragments: ["parameter \"density\" for model \(capital) is 1.5"]),
            Row(what: "breadcrumbs gamma 1", yaml: recipe("breadcrumbs", "{weight: 1, density: 0.5, gamma: 1}"),
                fragments: ["parameter \"gamma\" for model \(capital) is 1; it must be in [0, 1)"]),
            Row(what: "slerp t 5", yaml: recipe("slerp", "", "", global: "t: 5").replacingOccurrences(of: "    parameters: \n", with: ""),
                fragments: ["parameter \"t\" of slerp is 5; it must be in [0, 1] (or pass --allow-extrapolation)"]),
            Row(what: "nearswap t -1", yaml: recipe("nearswap", "{}", "", global: "t: -1"),
                fragments: ["parameter \"t\" of nearswap is -1; it must be in [0, ∞)"]),
            Row(what: "multislerp eps 0", yaml: recipe("multislerp", "{weight: 1}", global: "eps: 0"),
                fragments: ["parameter \"eps\" of multislerp is 0; it must be in (0, ∞)"]),
            Row(what: "karcher max_iter 2.5", yaml: recipe("karcher", "{}", "{}", global: "max_iter: 2.5"),
                fragments: ["parameter \"max_iter\" of karcher is 2.5; it must be a whole number in [1, 100000]"]),
            Row(what: "ram epsilon -1", yaml: recipe("ram", "{}", "{}", global: "epsilon: -1"),
                fragments: ["parameter \"epsilon\" of ram is -1"]),
            Row(what: "ramplus_tl r -0.1", yaml: recipe("ramplus_tl", "{}", "{}", global: "r: -0.1"),
                fragments: ["parameter \"r\" of ramplus_tl is -0.1"]),
            Row(what: "iso_cts common_space_fraction 1.5", yaml: recipe("iso_cts", "{}", "{}", global: "common_space_fraction: 1.5"),
                fragments: ["parameter \"common_space_fraction\" of iso_cts is 1.5; it must be in [0, 1]"]),
            Row(what: "sce select_topk 2", yaml: recipe("sce", "{}", "{}", global: "select_topk: 2"),
                fragments: ["parameter \"select_topk\" of sce is 2; it must be in [0, 1]"]),
        ]
    }

    func testBadRecipesAreRefusedNamingTheParameter() throws {
        for row in badRows {
            let found: [String]
            do { found = try problems(row.yaml) } catch { XCTFail("\(row.what): the plan itself threw \(error)"); continue }
            XCTAssertEqual(found.count, 1, "\(row.what): \(found)")
            guard let p = found.first else { continue }
            for f in row.fragments { XCTAssertTrue(p.contains(f), "\(row.what): \"\(p)\" lacks \"\(f)\"") }
        }
    }

    /// Boundary values that are acceptable stay accepted.
    func testBoundaryRecipesAreAccepted() throws {
        let good: [(String, String)] = [
            ("della: density + epsilon = 1 (a keep probability of 1 is a probability)", recipe("della", "{weight: 1, density: 0.75, epsilon: 0.25}")),
            ("della: density 1 prunes nothing, whatever epsilon", recipe("della", "{weight: 1, density: 1, epsilon: 0.5}")),
            ("della: epsilon 0 is DARE", recipe("della_linear", "{weight: 1, density: 0.5, epsilon: 0}")),
            ("della: defaults", recipe("della", "{weight: 1, density: 0.5}")),
            ("ties: negative weights are allowed (task-vector subtraction)", recipe("ties", "{weight: -1, density: 0.5}")),
            ("slerp t 1", recipe("slerp", "", "", global: "t: 1").replacingOccurrences(of: "    parameters: \n", with: "")),
        ]
        for (what, yaml) in good { XCTAssertEqual(try problems(yaml), [], what) }
    }

    /// The executor refuses the plan before reading a tensor or creating the output; the
    /// command-line error lists the problem naming the parameter and the model.
    func testDellaRefusalStopsBeforeAnyOutput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-param-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = recipe("della", "{weight: 1, density: 0.9, epsilon: 0.2}")
        let plan = try MergePlanner.plan(RecipeParser.parse(yaml))
        let out = dir.appendingPathComponent("out")
        XCTAssertThrowsError(try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false))) { e in
            guard case let MergeError.preflight(problems) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(problems.count, 1)
            XCTAssertTrue(problems[0].hasPrefix("parameter \"epsilon\" for model \(capital) is 0.2 with density 0.9"), problems[0])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
        // The same through the binary, when it is built.
        guard FileManager.default.isExecutableFile(atPath: Binary.url.path) else { return }
        let recipeFile = dir.appendingPathComponent("della.yaml")
        try yaml.write(to: recipeFile, atomically: true, encoding: .utf8)
        let r = try Binary.run(["merge", recipeFile.path, "-o", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("parameter \"epsilon\" for model \(capital) is 0.2 with density 0.9"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    /// The kernels' own check agrees with the planner's: the boundary accepted above merges.
    func testKernelAcceptsWhatThePlannerAccepts() throws {
        let s = SparsifierSettings(density: 0.75, gamma: 0.01, epsilon: 0.25, rescale: true)
        XCTAssertNoThrow(try Sparsifier.checkDella(s, tensor: "t"))
        let bad = SparsifierSettings(density: 0.9, gamma: 0.01, epsilon: 0.15, rescale: true)
        XCTAssertThrowsError(try Sparsifier.checkDella(bad, tensor: "t")) { XCTAssertTrue("\($0)".contains("parameter \"epsilon\""), "\($0)") }
        XCTAssertNil(Sparsifier.dellaProblem(density: 0.75, epsilon: 0.25))
        XCTAssertNotNil(Sparsifier.dellaProblem(density: 0.3, epsilon: 0.3))
    }
}

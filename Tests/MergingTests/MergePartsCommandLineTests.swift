import Foundation
import XCTest

/// The built `weightsmith` binary (beside the test bundle) running one merge as N processes at
/// once on one machine, as a scheduler would on several: `merge --plan-only`, N parallel
/// `merge --plan --part I/N` started from another working directory, `merge --plan --assemble`;
/// the folder equals `weightsmith merge` in one process, byte for byte. Skipped when the binary
/// has not been built (`swift build -c release` builds it).
final class MergePartsCommandLineTests: XCTestCase {
    static let binary = Binary.url
    static let root = MergePartsTests.root
    private let fm = FileManager.default

    typealias Run = Binary.Run
    private func start(_ args: [String], in cwd: URL) throws -> (Process, Pipe, Pipe) { try Binary.start(args, in: cwd) }
    private func finish(_ r: (Process, Pipe, Pipe)) -> Run { Binary.finish(r) }
    private func run(_ args: [String], in cwd: URL = root) throws -> Run { finish(try start(args, in: cwd)) }

    override func setUpWithError() throws { try Binary.requireBuilt() }

    private func tmp() throws -> URL {
        let d = fm.temporaryDirectory.appendingPathComponent("weightsmith-parts-cli-\(UUID().uuidString)")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    private func contents(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try fm.contentsOfDirectory(atPath: dir.path) { out[name] = try Data(contentsOf: dir.appendingPathComponent(name)) }
        return out
    }

    /// `merge ARGS` in one process against plan + N parallel parts + assemble (parts started in `elsewhere`).
    private func checkParallel(_ mergeArgs: (String) -> [String], parts n: Int, in dir: URL) throws {
        let one = dir.appendingPathComponent("one/out"), split = dir.appendingPathComponent("split/out")
        let elsewhere = dir.appendingPathComponent("elsewhere")
        try fm.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let plan = dir.appendingPathComponent("plan.json").path
        let r1 = try run(mergeArgs(one.path) + ["--quiet"])
        XCTAssertEqual(r1.status, 0, r1.err)
        let planned = try run(mergeArgs(split.path) + ["--plan-only", plan])
        XCTAssertEqual(planned.status, 0, planned.err)
        XCTAssertTrue(planned.out.contains("--part I/N"), planned.out)
        let started = try (1...n).map { try start(["merge", "--plan", plan, "--part", "\($0)/\(n)", "--quiet"], in: elsewhere) }
        for (i, p) in started.enumerated() {
            let r = finish(p)
            XCTAssertEqual(r.status, 0, "part \(i + 1)/\(n): \(r.err)")
            XCTAssertTrue(r.out.hasPrefix("part \(i + 1)/\(n): wrote"), r.out)
        }
        let again = try run(["merge", "--plan", plan, "--part", "1/\(n)"], in: elsewhere)
        XCTAssertTrue(again.out.contains("already complete"), again.out + again.err)
        let assembled = try run(["merge", "--plan", plan, "--assemble"], in: elsewhere)
        XCTAssertEqual(assembled.status, 0, assembled.err)
        let a = try contents(one), b = try contents(split)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        XCTAssertGreaterThan(a.keys.filter { $0.hasSuffix(".safetensors") }.count, n)
        for (name, bytes) in a { XCTAssertEqual(bytes, b[name], name) }
    }

    func testRecipeFileInThreeParallelProcesses() throws {
        try checkParallel({ ["merge", "fixtures/merge/recipes/ties.yml", $0, "--shard-size", "60KB"] }, parts: 3, in: try tmp())
    }

    /// A command-line recipe with relative paths: the plan records the working directory, so
    /// parts started in another folder find the same inputs.
    func testShortFormInFourParallelProcesses() throws {
        try checkParallel({ ["merge", "--method", "dare_linear", "--base", "fixtures/merge/base", "fixtures/merge/ft-a", "fixtures/merge/ft-b",
                             "--weight", "0.6", "--density", "0.5", "--seed", "3", "--dtype", "bf16", "--shard-size", "40KB", "-o", $0] },
                         parts: 4, in: try tmp())
    }

    /// scripts/slurm-merge.sbatch as three array tasks at once and the dependent assemble task
    /// (the Slurm variables set by hand), against the one-process merge.
    func testSlurmScriptRunsThePartsAndTheAssembly() throws {
        let dir = try tmp()
        let one = dir.appendingPathComponent("one/out"), split = dir.appendingPathComponent("split/out")
        let plan = dir.appendingPathComponent("plan.json").path
        let recipe = ["merge", "fixtures/merge/recipes/stack.yml", "--shard-size", "50KB"]
        XCTAssertEqual(try run(recipe + [one.path, "--quiet"]).status, 0)
        XCTAssertEqual(try run(recipe + [split.path, "--plan-only", plan]).status, 0)
        func task(_ env: [String: String]) throws -> (Process, Pipe, Pipe) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [Self.root.appendingPathComponent("scripts/slurm-merge.sbatch").path]
            p.environment = ProcessInfo.processInfo.environment.merging(env.merging(["WEIGHTSMITH": Self.binary.path, "PLAN": plan]) { a, _ in a }) { _, b in b }
            let o = Pipe(), e = Pipe()
            p.standardOutput = o
            p.standardError = e
            try p.run()
            return (p, o, e)
        }
        let tasks = try (1...3).map { try task(["PARTS": "3", "SLURM_ARRAY_TASK_ID": "\($0)", "SLURM_CPUS_PER_TASK": "1"]) }
        for t in tasks { let r = finish(t); XCTAssertEqual(r.status, 0, r.err) }
        let zero = finish(try task(["PARTS": "3", "SLURM_ARRAY_TASK_ID": "0"]))
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.err.contains("numbered from 1"), zero.err)
        let assembled = finish(try task(["ASSEMBLE": "1"]))
        XCTAssertEqual(assembled.status, 0, assembled.err)
        let a = try contents(one), b = try contents(split)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for (name, bytes) in a { XCTAssertEqual(bytes, b[name], name) }
    }

    func testCommandLineErrors() throws {
        let dir = try tmp()
        let plan = dir.appendingPathComponent("plan.json").path
        let out = dir.appendingPathComponent("out").path
        XCTAssertEqual(try run(["merge", "fixtures/merge/recipes/ties.yml", out, "--plan-only", plan]).status, 0)
        for (args, fragment) in [
            (["merge", "--plan", plan, "--part", "0/2"], "numbered from 1"),
            (["merge", "--plan", plan, "--part", "3/2"], "1...2"),
            (["merge", "--plan", plan], "either --part I/N or --assemble"),
            (["merge", "--plan", plan, "--part", "1/2", "--seed", "4"], "the plan fixes --seed"),
            (["merge", "fixtures/merge/recipes/ties.yml", out, "--part", "1/2"], "need --plan"),
            (["merge", "--plan", plan, "--assemble"], "does not exist"),
            (["merge", "fixtures/merge/recipes/ties.yml", out, "--plan-only", plan], "already exists"),
            (["merge", "fixtures/merge/recipes/ties.yml", "fixtures/merge/ft-a", "--plan-only", dir.appendingPathComponent("p2.json").path], "refusing to write the output onto the input"),
        ] {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.err.contains(fragment), "\(args.joined(separator: " ")): \(r.err)")
        }
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("p2.json").path))
        XCTAssertEqual(try run(["merge", "fixtures/merge/recipes/ties.yml", out, "--plan-only", plan, "--force"]).status, 0)
    }
}

import Foundation
import XCTest

/// The built `weightsmith` binary (beside the test bundle) on the NaN fixture and on compose
/// expressions: exit status, message, and that a refused writer leaves no output.
/// Skipped when the binary has not been built (`swift build -c release` builds it).
final class CommandLineNonFiniteTests: XCTestCase {
    static let binary = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("weightsmith")
    static let merge = NonFiniteTests.merge

    struct Run { var status: Int32; var out: String; var err: String }

    func run(_ args: [String]) throws -> Run { try Self.run(args) }

    static func run(_ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["OPENBLAS_NUM_THREADS": "1"]) { _, b in b }
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
    }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else { throw XCTSkip("\(Self.binary.path) not built") }
    }

    private func tmp() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cli-nonfinite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testComposeLeadingMinusAndParentheses() throws {
        let m = Self.merge.path
        let common = ["--base", "\(m)/base", "--model", "a=\(m)/ft-a", "--model", "b=\(m)/ft-b", "--dry-run"]
        // As written, and after `--`.
        for args in [["compose", "-0.5*a + b"] + common, ["compose"] + common + ["--", "-0.5*a + b"], ["compose"] + common + ["--", "-a"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            XCTAssertTrue(r.out.contains("[1](density=1, weight=-0.5)") || args.last == "-a", "\(args): \(r.out.prefix(400))")
            if args.last == "-a" { XCTAssertTrue(r.out.contains("[1](density=1, weight=-1)"), r.out) }
        }
        let r = try run(["compose", "a + 0.5 * (b + a)"] + common)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("[1](density=1, weight=1.5), [2](density=1, weight=0.5)"), String(r.out.prefix(600)))
        let bad = try run(["compose", "a + 0.5 * (b + a"] + common)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.contains("the \"(\" at column 11 is not closed; expected \")\" at column 17:\n  a + 0.5 * (b + a\n                  ^"), bad.err)
    }

    func testWritersRefuseAndRunnersRefuseTheNaNFixture() throws {
        let dir = try tmp()
        let nan = dir.appendingPathComponent("nan-ft")
        try NonFiniteTests.nanCopy(of: Self.merge.appendingPathComponent("ft-a"), to: nan)
        let m = Self.merge.path, n = nan.path, t = NonFiniteTests.poisoned
        let writers: [(String, [String])] = [
            ("merge", ["merge", "--method", "linear", n, "\(m)/ft-b", "--quiet", "-o"]),
            ("compose", ["compose", "--base", "\(m)/base", "-0.5*x + y", "--model", "x=\(n)", "--model", "y=\(m)/ft-b", "--quiet", "-o"]),
            ("convert", ["convert", n, "--dtype", "bf16"]),
            ("task-vector", ["task-vector", "extract", "\(m)/base", n, "--quiet", "-o"]),
        ]
        for (name, args) in writers {
            let out = dir.appendingPathComponent("out-\(name)").path
            let r = try run(args + [out])
            XCTAssertEqual(r.status, 1, "\(name): \(r.out) \(r.err)")
            XCTAssertTrue(r.err.contains("tensor \"\(t)\" from ") && r.err.contains(n) && r.err.contains("--allow-nonfinite"), "\(name): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), name)
            let ok = try run(args + [out, "--allow-nonfinite"])
            XCTAssertEqual(ok.status, 0, "\(name): \(ok.err)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out), name)
        }
        // SVD-based commands name the tensor instead of failing inside LAPACK.
        for args in [["extract-lora", "--base", "\(m)/base", "--tuned", n, "--rank", "2", "-o", dir.appendingPathComponent("lora").path],
                     ["spectrum", "--base", "\(m)/base", "--tuned", n, "--no-cache"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, "\(args[0]): \(r.out) \(r.err)")
            XCTAssertTrue(r.err.contains("tensor \"\(t)\" has 2 NaN/infinite values; its singular values are undefined") && r.err.contains(n),
                          "\(args[0]): \(r.err)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("lora").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])

        // eval and generate refuse the model; with --allow-nonfinite the non-finite output is the error.
        let data = "\(m)/eval/copy.jsonl"
        let e = try run(["eval", n, data])
        XCTAssertEqual(e.status, 1)
        XCTAssertTrue(e.err.contains("tensor \"\(t)\" has 2 NaN/infinite values of 8192; refusing to run this model"), e.err)
        let e2 = try run(["eval", n, data, "--allow-nonfinite"])
        XCTAssertEqual(e2.status, 1)
        XCTAssertTrue(e2.err.contains("the mean NLL is NaN"), e2.err)
        XCTAssertFalse(e2.out.contains("mean NLL nan"), e2.out)
        let g = try run(["generate", n, "a b", "--allow-nonfinite"])
        XCTAssertEqual(g.status, 1)
        XCTAssertTrue(g.err.contains("the model's logits are not finite"), g.err)
        let g0 = try run(["generate", n, "a b"])
        XCTAssertEqual(g0.status, 1)
        XCTAssertTrue(g0.err.contains("refusing to run this model"), g0.err)
    }
}

/// Bad data files and values given to the binary: typed messages that name the file and line,
/// exit status 64 without a usage line for problems found while running.
final class CommandLineInputErrorTests: XCTestCase {
    static let family = SoupTests.family

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CommandLineNonFiniteTests.binary.path) else { throw XCTSkip("binary not built") }
    }

    func testDataFileErrorsNameFileAndLine() throws {
        let cli = CommandLineNonFiniteTests.self
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cli-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: d) }
        let base = Self.family.appendingPathComponent("base").path
        let empty = d.appendingPathComponent("empty.jsonl"), blank = d.appendingPathComponent("blank.txt")
        let badUTF8 = d.appendingPathComponent("bad.jsonl")
        try Data().write(to: empty)
        try Data("  \n\n".utf8).write(to: blank)
        try (Data("{\"prompt\": \"a\", \"completion\": \" b\"}\n".utf8) + Data([0xFF, 0xFE]) + Data("{}\n".utf8)).write(to: badUTF8)
        let cases: [(String, String)] = [(empty.path, "\(empty.path): no examples"), (blank.path, "\(blank.path): no text to score"),
                                         (badUTF8.path, "\(badUTF8.path): line 2: not valid UTF-8"),
                                         (d.appendingPathComponent("missing.jsonl").path, "missing.jsonl: no such file")]
        for (file, message) in cases {
            let r = try cli.run(["eval", base, file])
            XCTAssertNotEqual(r.status, 0, file)
            XCTAssertTrue(r.err.contains(message), "\(file): \(r.err)")
            XCTAssertFalse(r.err.contains("Usage:"), "\(file): \(r.err)")
            XCTAssertEqual(r.out, "", file)
        }
        // A malformed command line still gets the usage line.
        let usage = try cli.run(["eval", base])
        XCTAssertEqual(usage.status, 64)
        XCTAssertTrue(usage.err.contains("Usage: weightsmith eval"), usage.err)
        // A window longer than the context is said, not silently shortened.
        let long = try cli.run(["eval", base, Self.family.appendingPathComponent("data/corpus.txt").path, "--window", "4096"])
        XCTAssertEqual(long.status, 0, long.err)
        XCTAssertTrue(long.err.contains("--window 4096 is longer than the model's context (256 positions)"), long.err)
    }

    func testOutOfRangeParametersAreRefusedBeforeAnyOutput() throws {
        let cli = CommandLineNonFiniteTests.self
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cli-range-\(UUID().uuidString)")
        let f = Self.family.path
        let r = try cli.run(["merge", "--method", "ties", "--base", "\(f)/base", "\(f)/capital-full", "\(f)/continent-full",
                             "--weight", "1", "--density", "1.5", "-o", out.path, "--quiet"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("parameter \"density\" for model \(f)/capital-full is 1.5; it must be in (0, 1]"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let s = try cli.run(["merge", "--method", "slerp", "--base", "\(f)/base", "\(f)/capital-full", "--set", "t=5", "--dry-run"])
        XCTAssertTrue(s.err.contains("it must be in [0, 1] (or pass --allow-extrapolation)"), s.err)
        let ok = try cli.run(["merge", "--method", "slerp", "--base", "\(f)/base", "\(f)/capital-full", "--set", "t=5", "--dry-run", "--allow-extrapolation"])
        XCTAssertEqual(ok.status, 0, ok.err)
    }
}

import Foundation
import XCTest

/// The built `weightsmith` binary beside the test bundle, run the way the command-line tests of
/// this target need it (one BLAS thread; started and collected separately for parallel parts).
enum Binary {
    static let url = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("weightsmith")
    /// The repository root (relative fixture paths in the tests are relative to it).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Run { var status: Int32; var out: String; var err: String }

    /// Skips the calling test when the binary is not built (`swift build -c release` builds it).
    static func requireBuilt() throws {
        guard FileManager.default.isExecutableFile(atPath: url.path) else { throw XCTSkip("\(url.path) not built") }
    }

    /// Starts the binary without waiting; `finish` collects it.
    static func start(_ args: [String], in cwd: URL = root, environment extra: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = url
        p.arguments = args
        p.currentDirectoryURL = cwd
        p.environment = ProcessInfo.processInfo.environment.merging(["OPENBLAS_NUM_THREADS": "1"].merging(extra) { _, b in b }) { _, b in b }
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        return (p, o, e)
    }

    static func finish(_ r: (Process, Pipe, Pipe)) -> Run {
        let od = r.1.fileHandleForReading.readDataToEndOfFile(), ed = r.2.fileHandleForReading.readDataToEndOfFile()
        r.0.waitUntilExit()
        return Run(status: r.0.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
    }

    static func run(_ args: [String], in cwd: URL = root) throws -> Run { finish(try start(args, in: cwd)) }
}

import Foundation
import XCTest
@testable import Checkpoints
import Tensors

/// Every file of the hostile corpus (scripts/make_hostile_safetensors.py) is rejected with exactly
/// the typed error its manifest names, and a description naming the problem and the file;
/// random truncations and byte flips of a valid file never crash.
final class HostileCorpusTests: XCTestCase {
    struct Case: Decodable {
        let path: String
        let error: String
        let message: String
        let why: String
    }

    /// The enum case name of a CheckpointError (`"headerTooLarge"`, ...).
    static func caseName(_ error: Error) -> String {
        guard let e = error as? CheckpointError else { return "not a CheckpointError: \(type(of: error))" }
        return Mirror(reflecting: e).children.first?.label ?? "\(e)"
    }

    func testEveryHostileFileIsRejectedWithItsTypedError() throws {
        let root = Fixtures.url("hostile")
        let data = try Data(contentsOf: root.appendingPathComponent("manifest.json"))
        let cases = try JSONDecoder().decode([Case].self, from: data)
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        XCTAssertGreaterThanOrEqual(Set(cases.map(\.error)).count, 20, "distinct error classes")
        for c in cases {
            let path = root.appendingPathComponent(c.path).path
            do {
                let checkpoint = try Checkpoint(path: path)
                XCTFail("\(c.path) (\(c.why)) opened with \(checkpoint.tensorNames.count) tensors; expected \(c.error)")
            } catch {
                XCTAssertEqual(Self.caseName(error), c.error, "\(c.path) (\(c.why)): \(error)")
                let text = "\(error)"
                XCTAssertTrue(text.contains(c.message), "\(c.path): description \"\(text)\" lacks \"\(c.message)\"")
                // The description names where the problem is (the file, or the folder's file name).
                let leaf = URL(fileURLWithPath: c.path).pathComponents.first ?? c.path
                XCTAssertTrue(text.contains(leaf) || text.contains("shards"), "\(c.path): description \"\(text)\" names no file")
            }
        }
    }

    /// SplitMix64: a tiny seeded generator so the mutation run is reproducible.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Opens a mutated file and, when it opens, reads every tensor: only CheckpointErrors may come out.
    func exercise(_ bytes: [UInt8], at url: URL) throws -> Bool {
        try Data(bytes).write(to: url)
        do {
            let f = try SafetensorsFile(url: url)
            var sum: UInt64 = 0
            for name in f.tensorNames {
                try f.withRawBytes(name) { raw in for b in raw { sum &+= UInt64(b) } }
                if f.info(name)!.dtype.isConvertibleToFloat32 { _ = try f.tensor(name) }
            }
            _ = sum
            return true
        } catch is CheckpointError {
            return false
        }
    }

    func testRandomTruncationsAndByteFlipsNeverCrash() throws {
        let original = [UInt8](try Data(contentsOf: Fixtures.url("all_dtypes.safetensors")))
        let headerEnd = 8 + Int(original.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        // Mutants are rewritten ~1,700 times: prefer a RAM-backed folder to a busy disk.
        var base = try makeTemporaryDirectory()
        if FileManager.default.isWritableFile(atPath: "/dev/shm") {
            base = URL(fileURLWithPath: "/dev/shm/ws-mutants-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
            addTeardownBlock { [base] in try? FileManager.default.removeItem(at: base) }
        }
        let url = base.appendingPathComponent("mutant.safetensors")
        var rng = SplitMix64(state: 20_261_127)
        var opened = 0, rejected = 0
        // Every truncation inside the header and a sample of the rest.
        for length in Array(0..<min(headerEnd + 16, original.count)) + (0..<50).map({ _ in Int.random(in: 0..<original.count, using: &rng) }) {
            if try exercise(Array(original[0..<length]), at: url) { opened += 1 } else { rejected += 1 }
        }
        XCTAssertEqual(opened, 0, "a truncated file opened")
        // Byte flips, mostly in the header where they change the structure, some in the data.
        for round in 0..<600 {
            var m = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = round % 5 == 0 ? Int.random(in: 0..<m.count, using: &rng) : Int.random(in: 0..<headerEnd, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: m[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case 1: m[i] = UInt8.random(in: 0...255, using: &rng)
                default: m[i] = Array("{}[],:\"0123456789-.e ".utf8).randomElement(using: &rng)!
                }
            }
            if try exercise(m, at: url) { opened += 1 } else { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 300)
        XCTAssertGreaterThan(opened, 0, "data-only flips should still open")
    }
}

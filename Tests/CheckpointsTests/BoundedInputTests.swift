import Checkpoints
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class BoundedInputTests: XCTestCase {
    /// Issue 13, item 9: a FIFO given as a model path hung forever in open(2); it is refused at once.
    func testFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let dir = try makeTemporaryDirectory()
        let fifo = dir.appendingPathComponent("model.safetensors")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let t0 = Date()
        XCTAssertThrowsError(try Checkpoint(path: fifo.path)) { XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)") }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }
}

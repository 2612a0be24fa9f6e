import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Merging

/// Which pages of a file mapping are in this process's resident set after a release, read from
/// `/proc/self/pagemap` (bit 63: page present). The merge executor streams inputs through mapped
/// files and drops each range's pages after use; the first fault of the next range maps the
/// previous range's last pages again (Linux's fault-around), so a release must also cover that
/// window, and must never reach outside the tensor it was given.
final class PageReleaseTests: XCTestCase {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Present bit of each page of `bytes`, or nil when pagemap cannot be read here.
    func present(_ bytes: UnsafeRawBufferPointer) -> [Bool]? {
        let fd = open("/proc/self/pagemap", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let first = Int(bitPattern: bytes.baseAddress!) / page
        let count = (bytes.count + page - 1) / page
        var entries = [UInt64](repeating: 0, count: count)
        let n = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(first * 8)) }
        guard n == count * 8 else { return nil }
        return entries.map { $0 >> 63 == 1 }
    }

    func mappedFile(pages: Int) throws -> (MappedFile, UnsafeRawBufferPointer) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pages-\(UUID().uuidString)")
        try Data(repeating: 7, count: pages * page).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        let file = try MappedFile(path: url.path)
        let bytes = file.bytes(0..<file.size)
        return (file, bytes)
    }

    func touchAll(_ bytes: UnsafeRawBufferPointer) {
        var sum = 0
        for i in stride(from: 0, to: bytes.count, by: page) { sum &+= Int(bytes[i]) }
        XCTAssertEqual(sum, 7 * (bytes.count / page))
    }

    func testChunkReleaseCoversTheFaultAroundWindowInsideItsTensor() throws {
        let (file, all) = try mappedFile(pages: 256)
        touchAll(all)
        guard let before = present(all) else { throw XCTSkip("/proc/self/pagemap is not readable here") }
        XCTAssertEqual(before.filter { $0 }.count, 256)
        // A "tensor" of pages 32..<224, a chunk of pages 100..<120 inside it.
        let tensor = UnsafeRawBufferPointer(rebasing: all[(32 * page)..<(224 * page)])
        let chunk = UnsafeRawBufferPointer(rebasing: all[(100 * page)..<(120 * page)])
        MergeExecutor.releaseMappedPages(chunk, in: tensor)
        let after = try XCTUnwrap(present(all))
        let margin = MappedFile.faultAroundBytes / page
        for p in 0..<256 {
            let released = p >= 100 - margin && p < 120 + margin
            XCTAssertEqual(after[p], !released, "page \(p)")
        }
        // At the tensor's edge the margin stops at the tensor's pages.
        touchAll(all)
        let edge = UnsafeRawBufferPointer(rebasing: all[(32 * page)..<(40 * page)])
        MergeExecutor.releaseMappedPages(edge, in: tensor)
        let edgeAfter = try XCTUnwrap(present(all))
        for p in 0..<256 {
            XCTAssertEqual(edgeAfter[p], !(p >= 32 && p < 40 + margin), "page \(p)")
        }
        withExtendedLifetime(file) {}
    }

    func testWholeFileReleaseDropsTheNeighbourPagesAFaultMappedAgain() throws {
        let (file, all) = try mappedFile(pages: 128)
        touchAll(all)
        guard present(all) != nil else { throw XCTSkip("/proc/self/pagemap is not readable here") }
        // Tensors of pages 0..<60 and 60..<128 (the boundary not on a fault-around window's
        // edge), the first one released, the second not read yet.
        file.releasePages(0..<(128 * page))
        XCTAssertEqual(try XCTUnwrap(present(all)).filter { $0 }.count, 0)
        // Touching page 60 (the second tensor's first) maps the cached pages of its window again,
        // some of them the first tensor's.
        XCTAssertEqual(all[60 * page], 7)
        let remapped = try XCTUnwrap(present(all))
        guard remapped[0..<60].contains(true) else { throw XCTSkip("no fault-around on this kernel") }
        file.releasePages((60 * page)..<(128 * page))
        let after = try XCTUnwrap(present(all))
        XCTAssertEqual(after.filter { $0 }.count, 0, "resident: \(after.indices.filter { after[$0] })")
    }
}

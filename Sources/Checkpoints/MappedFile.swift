#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Pages are read from disk only when touched.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused below as
        // not a regular file); reads of a regular file ignore the flag.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { throw CheckpointError.fileNotFound(path: path) }
            throw CheckpointError.io(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw CheckpointError.io(path: path, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError.io(path: path, message: "not a regular file (a folder, FIFO or device cannot be read as a checkpoint)")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw CheckpointError.io(path: path, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// Bytes `range` of the file; valid while this object is alive. Precondition: in bounds.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= size, "range \(range) outside file of \(size) bytes")
        guard let base, !range.isEmpty else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Advises the kernel that `range` will be read sequentially soon.
    public func adviseSequential(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), range.upperBound - start, MADV_WILLNEED)
    }

    /// Linux's fault-around window (`fault_around_bytes`, 64 KiB by default): a page fault in a
    /// file mapping also maps the cached pages around it, up to this far on either side.
    public static let faultAroundBytes = 64 << 10

    /// Drops this mapping's pages of `range` (MADV_DONTNEED) so that streaming through a large
    /// file keeps the resident set near one tensor. The bytes stay readable: touching them again
    /// re-reads them from the page cache or the disk.
    ///
    /// The range is widened by the fault-around window on both sides (within the file): the
    /// first fault in a tensor maps the previous tensor's last pages again after that tensor was
    /// released, and without the margin those stayed resident for the rest of the run (on a
    /// TinyLlama-shaped merge ~4 MB per input, growing with the number of tensors).
    public func releasePages(_ range: Range<Int>) {
        guard base != nil, !range.isEmpty else { return }
        Self.releasePages(bytes(range), within: bytes(0..<size))
    }

    /// The one page release of mapped input bytes: MADV_DONTNEED on the pages of `bytes`, rounded
    /// outward to whole pages and widened by `faultAroundBytes` on both sides, never past the
    /// pages of `bounds` (a region of the same read-only file mapping that holds `bytes`: the
    /// file, or one tensor), so nothing outside the mapping is touched. Rounding outward means a
    /// page shared with the next range is read back once when that range touches it; rounding
    /// inward would leave every range's boundary pages resident.
    public static func releasePages(_ bytes: UnsafeRawBufferPointer, within bounds: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress, let b = bounds.baseAddress, !bytes.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = Int(bitPattern: b) / page * page, hi = (Int(bitPattern: b) + bounds.count + page - 1) / page * page
        let start = Swift.max(lo, (Int(bitPattern: p) - faultAroundBytes) / page * page)
        let end = Swift.min(hi, (Int(bitPattern: p) + bytes.count + faultAroundBytes + page - 1) / page * page)
        guard end > start, let ptr = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(ptr, end - start, MADV_DONTNEED)
    }
}

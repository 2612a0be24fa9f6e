import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// A folder of cached singular decompositions, keyed by the content hash of the matrix.
///
/// Entries hold the left singular vectors U (m, k) and the singular values (all min(m, n) of
/// them, or the top k), as raw little-endian Float32 with a small header that repeats the
/// matrix shape and what was computed. A base model's SVDs are therefore computed once and
/// reused by every later analysis of any fine-tune of it; a changed tensor has another hash.
/// The default folder is `$WEIGHTSMITH_CACHE_DIR`, else `$XDG_CACHE_HOME/weightsmith/svd`, else
/// `~/.cache/weightsmith/svd`; `clear()` (CLI: `--clear-cache`) deletes its entries (nothing else). Writes are atomic;
/// an unreadable or mismatched entry is treated as a miss and rewritten.
public final class DecompositionCache: @unchecked Sendable {
    public let directory: URL
    private let lock = NSLock()
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(directory: URL) { self.directory = directory }

    public static var defaultDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let d = env["WEIGHTSMITH_CACHE_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("weightsmith/svd") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/weightsmith/svd")
    }

    /// What an entry holds.
    public struct Entry: Sendable {
        public var rows: Int, cols: Int
        /// U (rows, u.shape[1]).
        public var u: Tensor
        /// Singular values (count ≥ u columns when the full spectrum was stored).
        public var s: [Float]
    }

    private static let magic: [UInt8] = Array("WSSVD001".utf8)

    func url(kind: String, hash: UInt64, rows: Int, cols: Int) -> URL {
        directory.appendingPathComponent(String(format: "%016llx-%dx%d-%@.bin", hash, rows, cols, kind))
    }

    /// Looks up an entry; nil on a miss or an entry that does not match the shape.
    public func load(kind: String, hash: UInt64, rows: Int, cols: Int) -> Entry? {
        let entry = read(kind: kind, hash: hash, rows: rows, cols: cols)
        lock.lock(); if entry != nil { hits += 1 } else { misses += 1 }; lock.unlock()
        return entry
    }

    private func read(kind: String, hash: UInt64, rows: Int, cols: Int) -> Entry? {
        let u = url(kind: kind, hash: hash, rows: rows, cols: cols)
        guard let data = FileManager.default.contents(atPath: u.path), data.count >= 40 else { return nil }
        let entry: Entry? = data.withUnsafeBytes { raw in
            guard Array(raw[0..<8]) == DecompositionCache.magic else { return nil }
            let h = (0..<4).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 + 8 * $0, as: Int64.self))) }
            let (r, c, uc, sc) = (h[0], h[1], h[2], h[3])
            guard r == rows, c == cols, uc >= 0, sc >= 0, uc <= min(r, c), sc <= min(r, c),
                  data.count == 40 + 4 * (sc + r * uc) else { return nil }
            var s = [Float](repeating: 0, count: sc), uu = [Float](repeating: 0, count: r * uc)
            s.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[40..<(40 + 4 * sc)])) }
            uu.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(40 + 4 * sc)...])) }
            return Entry(rows: r, cols: c, u: Tensor(shape: [r, uc], scalars: uu), s: s)
        }
        return entry
    }

    /// Stores an entry (atomically: temp file + rename). Failures to write are ignored: the
    /// cache is an optimisation, never a correctness requirement.
    public func store(kind: String, hash: UInt64, entry: Entry) {
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch { return }
        var data = Data(DecompositionCache.magic)
        for v in [entry.rows, entry.cols, entry.u.shape[1], entry.s.count] {
            withUnsafeBytes(of: Int64(v).littleEndian) { data.append(contentsOf: $0) }
        }
        entry.s.withUnsafeBytes { data.append(contentsOf: $0) }
        entry.u.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        let final = url(kind: kind, hash: hash, rows: entry.rows, cols: entry.cols)
        let tmp = directory.appendingPathComponent(".\(final.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
            if rename(tmp.path, final.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
        } catch { try? FileManager.default.removeItem(at: tmp) }
    }

    /// Deletes the cache's own entries (`*.bin` files it wrote, and leftover temporary files of
    /// its writes), then the folder itself if that leaves it empty. Anything else in the folder
    /// is kept: `--cache-dir` may name a folder that holds other files. Returns the entries removed.
    @discardableResult
    public func clear() throws -> Int {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return 0 }
        var n = 0
        for name in names where Self.isOwnFile(name) {
            do { try fm.removeItem(at: directory.appendingPathComponent(name)) } catch {
                throw SpectralError.invalidOption("\(directory.appendingPathComponent(name).path): cannot remove: \(error.localizedDescription)")
            }
            if name.hasSuffix(".bin") { n += 1 }
        }
        _ = rmdir(directory.path)  // only when empty
        return n
    }

    /// Whether `name` is a file this cache writes: an entry (`KIND-HASH-RxC.bin` and the like,
    /// checked by its magic on load) or a temporary file of a write (`.ENTRY.bin.tmp-...`).
    static func isOwnFile(_ name: String) -> Bool {
        if name.hasSuffix(".bin") && !name.hasPrefix(".") { return true }
        return name.hasPrefix(".") && name.contains(".bin.tmp-")
    }
}

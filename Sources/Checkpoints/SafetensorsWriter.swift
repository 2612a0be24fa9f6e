import CFileIO
import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Streaming, atomic writer of one `.safetensors` file.
///
/// The header is computed from the declared entries up front, then tensors are written one at
/// a time in declaration order, so memory stays at one tensor (plus a small encode buffer).
/// Bytes go to a temporary file beside the destination; `finish()` checks that every tensor was
/// written, fsyncs and renames it into place. A writer dropped before `finish()` (an error, a
/// thrown conversion) deletes its temporary file: the destination path never holds a partial file.
///
/// Floating tensors are checked for NaN and ±infinity in the loop that encodes (or copies) each
/// chunk, so the check costs no extra pass over the data: unless `allowNonFinite`, a tensor with
/// any non-finite value throws `CheckpointError.nonFinite` once it is written, before `finish()`,
/// so the file is never committed.
public final class SafetensorsWriter {
    public let url: URL
    public let entries: [TensorEntry]
    private let tempPath: String
    private var fd: Int32
    private var next = 0
    private var finished = false
    /// Bytes written, and where the last early writeback ended.
    private var offset = 0
    private var writebackStart = 0
    /// Writeback of the bytes written so far starts every this many bytes, so that `finish()`'s
    /// fsync does not wait for the whole file (the disk works while the caller computes).
    static let writebackChunk = 64 << 20
    /// The tensor being written in pieces and its elements so far.
    private var openTensor: (entry: TensorEntry, written: Int)?
    /// Whether NaN/±Inf values may be written (`--allow-nonfinite`); refused by default.
    public let allowNonFinite: Bool
    /// Non-finite values seen in the tensor being written.
    private var nonFiniteInTensor = 0
    /// Tests only (`injectDiskFull`): the file's size at which writes fail with ENOSPC; nil
    /// (always, outside tests) costs one comparison per chunk written.
    private let diskFullAt: Int?

    /// Creates the temporary file and writes the header.
    /// - Throws: `CheckpointError.invalidWriterEntry` for duplicate or reserved names, I/O errors.
    public init(url: URL, entries: [TensorEntry], metadata: [String: String]? = nil, allowNonFinite: Bool = false) throws {
        self.url = url
        self.entries = entries
        self.allowNonFinite = allowNonFinite
        let header = try SafetensorsWriter.headerBytes(entries: entries, metadata: metadata, path: url.path)
        diskFullAt = SafetensorsWriter.takeInjectedDiskFull(for: url)
        let dir = url.deletingLastPathComponent().path
        tempPath = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError.io(path: url.path, message: "cannot create temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        var lengthLE = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &lengthLE) { try writeAll($0) }
        try header.withUnsafeBytes { try writeAll($0) }
    }

    deinit {
        if !finished {
            if fd >= 0 { close(fd) }
            unlink(tempPath)
        }
    }

    /// The exact header bytes (JSON padded with spaces to a multiple of 8, as the official library does).
    public static func headerBytes(entries: [TensorEntry], metadata: [String: String]?, path: String) throws -> [UInt8] {
        var json = "{"
        var first = true
        if let metadata, !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        var seen = Set<String>()
        for e in entries {
            guard e.name != "__metadata__" else {
                throw CheckpointError.invalidWriterEntry(path: path, reason: "\"__metadata__\" is reserved and cannot name a tensor")
            }
            guard seen.insert(e.name).inserted else {
                throw CheckpointError.invalidWriterEntry(path: path, reason: "tensor \"\(e.name)\" declared twice")
            }
            guard let count = e.shape.checkedElementCount else {
                throw CheckpointError.invalidWriterEntry(path: path, reason: "tensor \"\(e.name)\" has invalid shape \(e.shape)")
            }
            let bytes = count * e.dtype.byteSize
            if !first { json += "," }
            first = false
            json += "\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.dims.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        json += "}"
        var out = Array(json.utf8)
        while out.count % 8 != 0 { out.append(0x20) }
        return out
    }

    /// JSON string literal with the escapes JSON requires.
    static func jsonString(_ s: String) -> String { jsonQuoted(s) }

    private func writeAll(_ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            var want = buffer.count - done
            if let limit = diskFullAt { want = min(want, max(0, limit - (offset + done))) }
            // A write of 0 bytes can only come from the injected limit: fail as a full disk does.
            let n = want > 0 ? Glibc.write(fd, buffer.baseAddress! + done, want) : { () -> Int in errno = ENOSPC; return -1 }()
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointError.io(path: url.path, message: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        offset += buffer.count
        if offset - writebackStart >= Self.writebackChunk {
            // Best effort: a failure here changes nothing (fsync in finish() reports real errors).
            _ = ws_start_writeback(fd, Int64(writebackStart), Int64(offset - writebackStart))
            writebackStart = offset
        }
    }

    private func expectNext(_ name: String) throws -> TensorEntry {
        if let openTensor {
            throw CheckpointError.invalidWriterEntry(path: url.path, reason: "tensor \"\(name)\" written while \"\(openTensor.entry.name)\" is still open")
        }
        guard next < entries.count else {
            throw CheckpointError.invalidWriterEntry(path: url.path, reason: "tensor \"\(name)\" written after all declared tensors")
        }
        let e = entries[next]
        guard e.name == name else { throw CheckpointError.writeOutOfOrder(path: url.path, expected: e.name, got: name) }
        nonFiniteInTensor = 0
        return e
    }

    /// Ends the current tensor: throws when it held non-finite values and they are not allowed.
    private func completeTensor(_ e: TensorEntry) throws {
        if nonFiniteInTensor > 0 && !allowNonFinite {
            throw CheckpointError.nonFinite(path: url.path, tensor: e.name, count: nonFiniteInTensor, elements: e.shape.elementCount)
        }
        next += 1
    }

    /// Elements per chunk of the encode/copy loops (1 MB of Float32: the chunk counted for
    /// non-finite values is still in cache when it is encoded or written).
    static let chunkElements = 1 << 18

    /// Writes stored bytes of `dtype` in chunks, counting non-finite values in each chunk just before it is written.
    private func writeCounting(_ raw: UnsafeRawBufferPointer, dtype: DType) throws {
        guard dtype.isFloatingPoint else {
            if raw.count > 0 { try writeAll(raw) }
            return
        }
        let step = Self.chunkElements * dtype.byteSize
        var start = 0
        while start < raw.count {
            let part = UnsafeRawBufferPointer(rebasing: raw[start..<min(raw.count, start + step)])
            nonFiniteInTensor += NonFinite.count(raw: part, dtype: dtype)
            try writeAll(part)
            start += step
        }
    }

    /// Writes the next tensor, encoded to its declared dtype in chunks (bounded extra memory).
    public func write(_ name: String, _ tensor: Tensor) throws {
        let e = try expectNext(name)
        guard tensor.shape.dims == e.shape.dims else {
            throw CheckpointError.writeShapeMismatch(path: url.path, tensor: name, expected: e.shape, actual: tensor.shape)
        }
        try tensor.scalars.withUnsafeBufferPointer { src in
            try writeEncoded(src, dtype: e.dtype, name: name)
        }
        try completeTensor(e)
    }

    /// Writes the next tensor from Float32 values already in memory (shape taken from the entry).
    public func write(_ name: String, scalars src: UnsafeBufferPointer<Float>) throws {
        let e = try expectNext(name)
        guard src.count == e.shape.elementCount else {
            throw CheckpointError.writeShapeMismatch(path: url.path, tensor: name, expected: e.shape, actual: Shape([src.count]))
        }
        try writeEncoded(src, dtype: e.dtype, name: name)
        try completeTensor(e)
    }

    private func writeEncoded(_ src: UnsafeBufferPointer<Float>, dtype: DType, name: String) throws {
        if dtype == .f32 {
            try writeCounting(UnsafeRawBufferPointer(src), dtype: .f32)
            return
        }
        let chunk = Self.chunkElements
        var buffer = [UInt8](repeating: 0, count: min(chunk, max(src.count, 1)) * dtype.byteSize)
        var start = 0
        while start < src.count {
            let n = min(chunk, src.count - start)
            let part = UnsafeBufferPointer(rebasing: src[start..<(start + n)])
            try buffer.withUnsafeMutableBytes { dst in
                let out = UnsafeMutableRawBufferPointer(rebasing: dst[0..<(n * dtype.byteSize)])
                do {
                    try DTypeConversion.encode(part, as: dtype, into: out, context: name)
                } catch let err as TensorError {
                    throw CheckpointError.conversion(path: url.path, tensor: name, underlying: err)
                }
                // Counted on the encoded chunk (still in cache): catches NaN/Inf values and finite
                // values that overflow the narrower dtype (above 65504 in F16).
                nonFiniteInTensor += NonFinite.count(raw: UnsafeRawBufferPointer(out), dtype: dtype)
                try writeAll(UnsafeRawBufferPointer(out))
            }
            start += n
        }
    }

    /// Starts writing the next tensor in pieces: `appendPiece` with consecutive Float32 values
    /// (encoded to the entry's dtype as they arrive), then `endPieces`, which checks the count.
    /// Memory stays at one piece, whatever the tensor's size.
    public func beginPieces(_ name: String) throws {
        openTensor = (try expectNext(name), 0)
    }

    /// The next `src.count` elements of the open tensor.
    public func appendPiece(_ src: UnsafeBufferPointer<Float>) throws {
        guard let o = openTensor else {
            throw CheckpointError.invalidWriterEntry(path: url.path, reason: "piece written with no tensor open")
        }
        let count = o.entry.shape.elementCount
        guard o.written + src.count <= count else {
            throw CheckpointError.writeShapeMismatch(path: url.path, tensor: o.entry.name, expected: o.entry.shape,
                                                     actual: Shape([o.written + src.count]))
        }
        try writeEncoded(src, dtype: o.entry.dtype, name: o.entry.name)
        openTensor = (o.entry, o.written + src.count)
    }

    /// Closes the open tensor; throws unless exactly its element count was written.
    public func endPieces() throws {
        guard let o = openTensor else {
            throw CheckpointError.invalidWriterEntry(path: url.path, reason: "endPieces with no tensor open")
        }
        guard o.written == o.entry.shape.elementCount else {
            throw CheckpointError.writeShapeMismatch(path: url.path, tensor: o.entry.name, expected: o.entry.shape, actual: Shape([o.written]))
        }
        openTensor = nil
        try completeTensor(o.entry)
    }

    /// Writes the next tensor from stored bytes of another dtype (`raw`: little-endian `source`
    /// elements, possibly unaligned, e.g. straight from a mapped file), converting in chunks to the
    /// entry's dtype through Float32, so memory stays at a small scratch buffer. Same dtype: a copy.
    public func write(_ name: String, converting raw: UnsafeRawBufferPointer, from source: DType) throws {
        let e = try expectNext(name)
        let count = e.shape.elementCount
        guard raw.count == count * source.byteSize else {
            throw CheckpointError.byteSizeMismatch(path: url.path, tensor: name, expected: count * source.byteSize, actual: raw.count)
        }
        if source == e.dtype {
            try writeCounting(raw, dtype: source)
            try completeTensor(e)
            return
        }
        let chunk = Self.chunkElements
        var scratch = [Float](repeating: 0, count: min(chunk, max(count, 1)))
        var out = [UInt8](repeating: 0, count: e.dtype == .f32 ? 0 : scratch.count * e.dtype.byteSize)
        var start = 0
        do {
            while start < count {
                let n = min(chunk, count - start)
                let src = UnsafeRawBufferPointer(rebasing: raw[(start * source.byteSize)..<((start + n) * source.byteSize)])
                try scratch.withUnsafeMutableBufferPointer { buf in
                    let floats = UnsafeMutableBufferPointer(rebasing: buf[0..<n])
                    try DTypeConversion.decode(src, dtype: source, into: floats, context: name)
                    if e.dtype == .f32 {
                        nonFiniteInTensor += NonFinite.count(UnsafeBufferPointer(floats))
                        try writeAll(UnsafeRawBufferPointer(floats))
                    } else {
                        try out.withUnsafeMutableBytes { dst in
                            let part = UnsafeMutableRawBufferPointer(rebasing: dst[0..<(n * e.dtype.byteSize)])
                            try DTypeConversion.encode(UnsafeBufferPointer(floats), as: e.dtype, into: part, context: name)
                            nonFiniteInTensor += NonFinite.count(raw: UnsafeRawBufferPointer(part), dtype: e.dtype)
                            try writeAll(UnsafeRawBufferPointer(part))
                        }
                    }
                }
                start += n
            }
        } catch let err as TensorError {
            throw CheckpointError.conversion(path: url.path, tensor: name, underlying: err)
        }
        try completeTensor(e)
    }

    /// Writes the next tensor's stored bytes unchanged (they must already be in the entry's dtype).
    public func write(_ name: String, rawBytes: UnsafeRawBufferPointer) throws {
        let e = try expectNext(name)
        guard rawBytes.count == e.byteCount else {
            throw CheckpointError.byteSizeMismatch(path: url.path, tensor: name, expected: e.byteCount, actual: rawBytes.count)
        }
        try writeCounting(rawBytes, dtype: e.dtype)
        try completeTensor(e)
    }

    /// Checks completeness, fsyncs and atomically renames the file into place.
    public func finish() throws {
        guard openTensor == nil, next == entries.count else {
            throw CheckpointError.writeIncomplete(path: url.path, missing: entries[next].name)
        }
        guard fsync(fd) == 0 else {
            throw CheckpointError.io(path: url.path, message: "fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        fd = -1
        guard rename(tempPath, url.path) == 0 else {
            throw CheckpointError.io(path: url.path, message: "rename failed: \(String(cString: strerror(errno)))")
        }
        finished = true
        syncDirectory(url.deletingLastPathComponent().path)
    }
}

/// fsync of a directory so that a rename inside it survives a crash (best effort).
func syncDirectory(_ path: String) {
    let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        _ = fsync(dfd)
        close(dfd)
    }
}

/// Writes `data` to `url` atomically (temporary file in the same folder, fsync, rename).
public func writeFileAtomically(_ data: [UInt8], to url: URL) throws {
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        throw CheckpointError.io(path: url.path, message: "cannot create temporary file: \(String(cString: strerror(errno)))")
    }
    var ok = false
    defer { if !ok { close(fd); unlink(tmp) } }
    var done = 0
    while done < data.count {
        let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, data.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CheckpointError.io(path: url.path, message: "write failed: \(String(cString: strerror(errno)))")
        }
        done += n
    }
    guard fsync(fd) == 0 else { throw CheckpointError.io(path: url.path, message: "fsync failed") }
    close(fd)
    guard rename(tmp, url.path) == 0 else {
        unlink(tmp)
        ok = true
        throw CheckpointError.io(path: url.path, message: "rename failed: \(String(cString: strerror(errno)))")
    }
    ok = true
    syncDirectory(dir)
}

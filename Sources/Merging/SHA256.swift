import CMergeKernels
import Foundation

/// SHA-256 (FIPS 180-4) for the model card's input fingerprints. The compression runs on the
/// x86 SHA extensions when the CPU has them (`ws_sha256_compress_shani`, checked at run time;
/// several times faster), else in plain Swift over unsafe pointers (no CryptoKit on Linux);
/// files are streamed in 4 MiB reads.
public struct SHA256 {
    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
    private var buffer = [UInt8](repeating: 0, count: 64)
    private var buffered = 0
    private var length: UInt64 = 0

    /// The round constants, from the C kernels (one table for both compressions).
    static let k: [UInt32] = withUnsafeBytes(of: ws_sha256_k) { Array($0.bindMemory(to: UInt32.self)) }

    public init() {}

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard var p = data.baseAddress else { return }
        var n = data.count
        length &+= UInt64(n)
        if buffered > 0 {
            let take = min(64 - buffered, n)
            for i in 0..<take { buffer[buffered + i] = p.load(fromByteOffset: i, as: UInt8.self) }
            buffered += take; p += take; n -= take
            if buffered == 64 {
                buffer.withUnsafeBytes { compress($0.baseAddress!, blocks: 1) }
                buffered = 0
            }
        }
        let blocks = n / 64
        if blocks > 0 { compress(p, blocks: blocks); p += blocks * 64; n -= blocks * 64 }
        // What is left is shorter than a block. When the buffer still holds bytes here, the whole
        // piece went into it above and n is 0: append, never restart the buffer.
        for i in 0..<n { buffer[buffered + i] = p.load(fromByteOffset: i, as: UInt8.self) }
        buffered += n
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var pad: [UInt8] = [0x80]
        let rem = (Int(length % 64) + 1) % 64
        pad += [UInt8](repeating: 0, count: rem <= 56 ? 56 - rem : 120 - rem)
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        let saved = length
        update(pad)
        length = saved
        var out: [UInt8] = []
        for v in [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7] { for s in [24, 16, 8, 0] { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
        return out
    }

    public static func hex(_ digest: [UInt8]) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    /// Hex digest of a file, read in 4 MiB chunks.
    public static func hexDigest(ofFile path: String) throws -> String {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw MergeError.io(path: path, message: "cannot open for hashing") }
        defer { try? fh.close() }
        var sha = SHA256()
        while true {
            let chunk = fh.readData(ofLength: 4 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { sha.update($0) }
        }
        return hex(sha.finalize())
    }

    /// Whether the SHA extensions are used (they are when the CPU has them); tests turn it off to
    /// compare the two paths.
    nonisolated(unsafe) static var hardware = ws_sha256_shani_available() != 0

    private mutating func compress(_ p: UnsafeRawPointer, blocks: Int) {
        if Self.hardware {
            var st: [UInt32] = [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7]
            st.withUnsafeMutableBufferPointer { ws_sha256_compress_shani($0.baseAddress!, p.assumingMemoryBound(to: UInt8.self), blocks) }
            h = (st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7])
            return
        }
        var (a0, b0, c0, d0, e0, f0, g0, h0) = h
        Self.k.withUnsafeBufferPointer { kk in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
                for blk in 0..<blocks {
                    let q = p + blk * 64
                    for i in 0..<16 { w[i] = UInt32(bigEndian: q.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                    for i in 16..<64 {
                        let x = w[i - 15], y = w[i - 2]
                        let s0 = (x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)
                        let s1 = (y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)
                        w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                    }
                    var a = a0, b = b0, c = c0, d = d0, e = e0, f = f0, g = g0, hh = h0
                    for i in 0..<64 {
                        let S1 = (e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)
                        let ch = (e & f) ^ (~e & g)
                        let t1 = hh &+ S1 &+ ch &+ kk[i] &+ w[i]
                        let S0 = (a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)
                        let maj = (a & b) ^ (a & c) ^ (b & c)
                        let t2 = S0 &+ maj
                        hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                    }
                    a0 &+= a; b0 &+= b; c0 &+= c; d0 &+= d; e0 &+= e; f0 &+= f; g0 &+= g; h0 &+= hh
                }
            }
        }
        h = (a0, b0, c0, d0, e0, f0, g0, h0)
    }
}

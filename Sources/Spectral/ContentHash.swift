/// A fast 64-bit content hash (the XXH64 construction: four multiply-rotate lanes over 32-byte
/// stripes, then avalanche), used to key cached decompositions by a matrix's exact Float32
/// contents. Not cryptographic; cache entries also record and check the shape.
public func contentHash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
    let p1: UInt64 = 0x9E37_79B1_85EB_CA87, p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    let p3: UInt64 = 0x1656_67B1_9E37_79F9, p4: UInt64 = 0x85EB_CA77_C2B2_AE63, p5: UInt64 = 0x27D4_EB2F_1656_67C5
    @inline(__always) func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) func round(_ acc: UInt64, _ input: UInt64) -> UInt64 { rotl(acc &+ input &* p2, 31) &* p1 }
    @inline(__always) func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 { (acc ^ round(0, v)) &* p1 &+ p4 }
    let n = bytes.count
    var i = 0
    var h: UInt64
    guard let base = bytes.baseAddress else { return (seed &+ p5) ^ ((seed &+ p5) >> 33) }
    @inline(__always) func load64(_ o: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
    if n >= 32 {
        var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
        while i + 32 <= n {
            v1 = round(v1, load64(i)); v2 = round(v2, load64(i + 8))
            v3 = round(v3, load64(i + 16)); v4 = round(v4, load64(i + 24))
            i += 32
        }
        h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
        h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4)
    } else {
        h = seed &+ p5
    }
    h = h &+ UInt64(n)
    while i + 8 <= n { h ^= round(0, load64(i)); h = rotl(h, 27) &* p1 &+ p4; i += 8 }
    while i < n { h ^= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) &* p5; h = rotl(h, 11) &* p1; i += 1 }
    h ^= h >> 33; h = h &* p2; h ^= h >> 29; h = h &* p3; h ^= h >> 32
    return h
}

/// Content hash of a Float32 buffer.
public func contentHash(_ values: [Float]) -> UInt64 {
    values.withUnsafeBytes { contentHash($0) }
}

import Foundation

/// A deterministic pseudo-random generator: xoshiro256** seeded through SplitMix64.
///
/// The same seed gives the same stream on every platform and run (no system entropy, no
/// Foundation randomness). `nextNormal()` uses the Box-Muller transform in Double and caches
/// the second variate. Not cryptographic.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    private var spareNormal: Double?

    public init(seed: UInt64) {
        var sm = seed
        s0 = SeededRandom.splitMix(&sm)
        s1 = SeededRandom.splitMix(&sm)
        s2 = SeededRandom.splitMix(&sm)
        s3 = SeededRandom.splitMix(&sm)
        spareNormal = nil
    }

    /// SplitMix64 step (Steele, Lea, Flood 2014), used only to spread the seed over the state.
    @inline(__always)
    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// xoshiro256** (Blackman & Vigna 2018).
    public mutating func next() -> UInt64 {
        let result = SeededRandom.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = SeededRandom.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal N(0, 1) by Box-Muller.
    public mutating func nextNormal() -> Double {
        if let z = spareNormal { spareNormal = nil; return z }
        // u1 in (0, 1] so that log(u1) is finite.
        let u1 = 1.0 - nextUniform()
        let u2 = nextUniform()
        let r = (-2.0 * Foundation.log(u1)).squareRoot()
        let theta = 2.0 * Double.pi * u2
        spareNormal = r * Foundation.sin(theta)
        return r * Foundation.cos(theta)
    }

    /// `count` independent N(0, std^2) values as Float.
    public mutating func normalFloats(_ count: Int, std: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count { out[i] = Float(nextNormal()) * std }
        return out
    }

    /// `count` independent N(0, 1) values as Double.
    public mutating func normalDoubles(_ count: Int) -> [Double] {
        var out = [Double](repeating: 0, count: count)
        for i in 0..<count { out[i] = nextNormal() }
        return out
    }

    /// A rows x cols tensor of N(0, std^2) entries.
    public mutating func normalTensor(rows: Int, cols: Int, std: Float = 1) -> Tensor {
        Tensor(shape: [rows, cols], scalars: normalFloats(rows * cols, std: std))
    }

    /// A random unit vector in R^n (normalised Gaussian).
    public mutating func unitVector(_ n: Int) -> [Float] {
        let g = normalDoubles(n)
        let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return g.map { Float($0 / norm) }
    }
}

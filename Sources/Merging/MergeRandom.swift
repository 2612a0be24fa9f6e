/// xoshiro256** seeded through SplitMix64: a small, fast, reproducible generator for the
/// randomised merge methods (DARE, DELLA). Streams are derived from (user seed, tensor name,
/// model index), so results do not depend on the order or thread in which jobs run.
///
/// This does not reproduce torch's Bernoulli stream; agreement with mergekit for DARE/DELLA is
/// statistical (kept fraction, L1 preservation), see README.
public struct MergeRandom: Sendable {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// A generator for one (tensor, model) pair under a user seed.
    public init(seed: UInt64, tensor: String, model: Int) {
        self.init(seed: MergeRandom.streamSeed(seed, tensor, model))
    }

    static func streamSeed(_ seed: UInt64, _ tensor: String, _ model: Int) -> UInt64 {
        // FNV-1a over the tensor name: stable across runs and platforms (unlike Hasher).
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in tensor.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return seed ^ h ^ (UInt64(model &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}

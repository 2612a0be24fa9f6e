import Tensors

/// The randomness of the randomised merge methods (DARE, DELLA): a counter-based generator.
///
/// Element `j` (< 2^32) of model `i`'s task vector in tensor `T` under user seed `s` draws the
/// 32-bit value `bits32(j) = mix(mix(j ⊕ k0) ⊕ k1)`, where `(k1, k0)` are the two halves of
/// `stream(s, T, i)` and `mix` is a 32-bit integer finaliser (xor-shift-multiply, constants
/// 0x7feb352d and 0x846ca68b); `u = bits32 / 2^32` is uniform in [0, 1). A value depends only on
/// (seed, tensor, model, element), not on the order or thread in which blocks run, so streamed and
/// in-memory merges agree exactly and a merge is reproducible with `--seed`. The 32-bit mixing
/// vectorises: drawing costs about as much as reading the inputs.
///
/// "Keep with probability p" is `bits32(j) < ⌈p·2^32⌉`, i.e. `bits32(j) ≤ limit(p)`.
///
/// This does not reproduce torch's Bernoulli stream; agreement with mergekit for DARE/DELLA is
/// statistical (kept fraction, L1 preservation), see README.
public struct MergeRandom: Sendable {
    /// The stream key of one (tensor, model) pair under a user seed.
    public let stream: UInt64
    let k0: UInt32
    let k1: UInt32

    public init(seed: UInt64, tensor: String, model: Int) {
        stream = MergeRandom.streamSeed(seed, tensor, model)
        k0 = UInt32(truncatingIfNeeded: stream)
        k1 = UInt32(truncatingIfNeeded: stream >> 32)
    }

    static func streamSeed(_ seed: UInt64, _ tensor: String, _ model: Int) -> UInt64 {
        // FNV-1a over the tensor name: stable across runs and platforms (unlike Hasher).
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in tensor.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        // SplitMix64 finaliser, so that both 32-bit halves depend on every input bit.
        var z = seed ^ h ^ (UInt64(model &+ 1) &* 0x9E37_79B9_7F4A_7C15)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    static func mix(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16
        x = x &* 0x7FEB_352D
        x ^= x >> 15
        x = x &* 0x846C_A68B
        x ^= x >> 16
        return x
    }

    /// The 32 random bits of element `index`.
    @inline(__always)
    public func bits32(_ index: Int) -> UInt32 {
        MergeRandom.mix(MergeRandom.mix(UInt32(truncatingIfNeeded: index) ^ k0) ^ k1)
    }

    /// Uniform in [0, 1) for element `index`.
    public func uniform(_ index: Int) -> Double { Double(bits32(index)) * 0x1p-32 }

    /// The largest `bits32` value kept with probability `p`, nil when `p ≤ 0` (nothing kept).
    @inline(__always)
    public static func limit(_ p: Double) -> UInt32? {
        if !(p > 0) { return nil }
        let t = (p * 0x1p32).rounded(.up)
        return t >= 0x1p32 ? .max : UInt32(t) - 1
    }

    /// True when element `index` is kept with probability `p`.
    @inline(__always)
    public func keeps(_ index: Int, probability p: Double) -> Bool {
        guard let l = MergeRandom.limit(p) else { return false }
        return bits32(index) <= l
    }
}

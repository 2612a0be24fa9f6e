import Tensors

/// The randomness of the randomised merge methods (DARE, DELLA): a counter-based generator.
///
/// Element `j` of model `i`'s task vector in tensor `T` under user seed `s` draws
/// `u = mix(stream(s, T, i) + (j + 1)·φ) / 2^53` (φ = 0x9E3779B97F4A7C15, `mix` = the SplitMix64
/// finaliser, top 53 bits), uniform in [0, 1). A value depends only on (seed, tensor, model,
/// element), not on the order or thread in which blocks run, so streamed and in-memory merges
/// agree exactly and a merge is reproducible with `--seed`.
///
/// This does not reproduce torch's Bernoulli stream; agreement with mergekit for DARE/DELLA is
/// statistical (kept fraction, L1 preservation), see README.
public struct MergeRandom: Sendable {
    /// The stream key of one (tensor, model) pair under a user seed.
    public let stream: UInt64

    public init(seed: UInt64, tensor: String, model: Int) {
        stream = MergeRandom.streamSeed(seed, tensor, model)
    }

    static func streamSeed(_ seed: UInt64, _ tensor: String, _ model: Int) -> UInt64 {
        // FNV-1a over the tensor name: stable across runs and platforms (unlike Hasher).
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in tensor.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return seed ^ h ^ (UInt64(model &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// The 53-bit integer behind element `index`'s uniform: `u = bits53(index) · 2^-53`.
    @inline(__always)
    public func bits53(_ index: Int) -> UInt64 {
        var z = stream &+ UInt64(truncatingIfNeeded: index &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) >> 11
    }

    /// Uniform in [0, 1) for element `index`.
    @inline(__always)
    public func uniform(_ index: Int) -> Double { Double(bits53(index)) * 0x1p-53 }

    /// The integer threshold of "`uniform(j) < p`": `bits53(j) < threshold53(p)` is the same test
    /// without floating point (`Double(bits53)·2^-53` is exact, so `u < p ⟺ bits53 < ⌈p·2^53⌉`).
    @inline(__always)
    public static func threshold53(_ p: Double) -> UInt64 {
        if !(p > 0) { return 0 }
        if p >= 1 { return 1 << 53 }
        return UInt64((p * 0x1p53).rounded(.up))
    }
}

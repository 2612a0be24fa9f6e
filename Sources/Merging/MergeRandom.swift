import Tensors

/// The random streams of the randomised merge methods (DARE, DELLA): `SeededRandom`
/// (xoshiro256**) keyed by (user seed, tensor name, model index), so results do not depend on
/// the order or thread in which jobs run.
///
/// This does not reproduce torch's Bernoulli stream; agreement with mergekit for DARE/DELLA is
/// statistical (kept fraction, L1 preservation), see README.
public struct MergeRandom: Sendable {
    private var generator: SeededRandom

    public init(seed: UInt64) { generator = SeededRandom(seed: seed) }

    /// The generator for one (tensor, model) pair under a user seed.
    public init(seed: UInt64, tensor: String, model: Int) {
        self.init(seed: MergeRandom.streamSeed(seed, tensor, model))
    }

    static func streamSeed(_ seed: UInt64, _ tensor: String, _ model: Int) -> UInt64 {
        // FNV-1a over the tensor name: stable across runs and platforms (unlike Hasher).
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in tensor.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return seed ^ h ^ (UInt64(model &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func nextDouble() -> Double { generator.nextUniform() }
}

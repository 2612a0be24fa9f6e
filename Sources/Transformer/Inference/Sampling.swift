import Foundation

/// A small seeded generator (SplitMix64): the same seed gives the same samples on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// How the next token is chosen from logits.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches `topP`.
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }
}

public enum Sampler {
    /// Index of the largest logit (the first one on ties).
    public static func argmax(_ logits: ArraySlice<Float>) -> Int {
        var best = logits.startIndex
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best - logits.startIndex
    }

    /// A token drawn from softmax(logits / temperature) restricted to the top-p nucleus;
    /// greedy when temperature <= 0.
    public static func sample<G: RandomNumberGenerator>(_ logits: ArraySlice<Float>, options: SamplingOptions, using rng: inout G) -> Int {
        guard options.temperature > 0 else { return argmax(logits) }
        let base = logits.startIndex
        let m = logits.max() ?? 0
        var probs = logits.map { Double(exp(($0 - m) / options.temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = Array(probs.indices)
        if options.topP < 1 {
            order.sort { probs[$0] > probs[$1] }
            var cumulative = 0.0
            var keep = 0
            for i in order {
                cumulative += probs[i]
                keep += 1
                if cumulative >= Double(options.topP) { break }
            }
            order = Array(order.prefix(keep))
        }
        let mass = order.reduce(0.0) { $0 + probs[$1] }
        var u = Double.random(in: 0..<1, using: &rng) * mass
        for i in order {
            u -= probs[i]
            if u < 0 { return i }
        }
        _ = base
        return order.last ?? 0
    }
}

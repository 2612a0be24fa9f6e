import Foundation
import Tensors
import Tokenizers

/// Autoregressive generation with a KV cache: one prefill over the prompt, then one position
/// per new token, sampling by `SamplingOptions`. Stops at `maxTokens`, an end-of-sequence token
/// (not emitted), or the model's/cache's position limit.
public struct GenerationResult: Sendable {
    public var promptTokens: [Int]
    public var tokens: [Int]
    public var text: String
    public var prefillSeconds: Double
    public var generationSeconds: Double
    public var stoppedAtEOS: Bool
}

public final class TextGenerator {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer
    /// Token ids that end generation (defaults: the config's eos ids and the tokenizer's eos).
    public var stopTokenIds: Set<Int>

    public init(model: TransformerModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
        var stops = Set(model.config.eosTokenIds)
        if let e = tokenizer.eosTokenId { stops.insert(e) }
        stopTokenIds = stops
    }

    /// Generates from `prompt`; `onText` receives decoded text as soon as it forms complete UTF-8.
    public func generate(prompt: String, maxTokens: Int, options: SamplingOptions = SamplingOptions(),
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        let promptIds = tokenizer.encode(prompt)
        guard !promptIds.isEmpty else { throw ModelError.invalidInput("the prompt encodes to no tokens") }
        return try generate(promptIds: promptIds, maxTokens: maxTokens, options: options, onText: onText)
    }

    public func generate(promptIds: [Int], maxTokens: Int, options: SamplingOptions = SamplingOptions(),
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        var limit = promptIds.count + max(maxTokens, 0)
        // Every family stops at its context length (forward refuses positions beyond it).
        limit = min(limit, model.config.maxPositions)
        if let w = model.config.slidingWindow { limit = min(limit, w) }
        guard promptIds.count <= limit else {
            throw ModelError.invalidInput("the prompt has \(promptIds.count) tokens, more than the model's \(limit) positions")
        }
        let cache = model.makeCache(batch: 1, capacity: limit)
        var rng = SeededGenerator(seed: options.seed)
        var pending: [UInt8] = []
        var out: [Int] = []
        var stopped = false
        let t0 = Date()
        var logits = try model.forward([promptIds], cache: cache, lastOnly: true)
        let prefill = Date().timeIntervalSince(t0)
        let t1 = Date()
        while out.count < maxTokens {
            // NaN logits would sample an arbitrary token (often nothing printable): refuse instead.
            let bad = logits.scalars.withUnsafeBufferPointer { NonFinite.count($0) }
            if bad > 0 { throw ModelError.nonFinite(source: model.source, tensor: "logits", count: bad, elements: logits.count) }
            let next = Sampler.sample(logits.scalars[...], options: options, using: &rng)
            if stopTokenIds.contains(next) { stopped = true; break }
            out.append(next)
            if let emit = onText {
                pending += tokenizer.isSpecial(next) ? Array(tokenizer.vocabulary[next].utf8) : tokenizer.tokenBytes(next)
                let n = completeUTF8PrefixLength(pending)
                if n > 0 {
                    emit(String(decoding: pending[..<n], as: UTF8.self))
                    pending.removeFirst(n)
                }
            }
            guard cache.length < cache.capacity else { break }
            logits = try model.forward([[next]], cache: cache, lastOnly: true)
        }
        if let emit = onText, !pending.isEmpty { emit(String(decoding: pending, as: UTF8.self)) }
        return GenerationResult(promptTokens: promptIds, tokens: out, text: try tokenizer.decode(out),
                                prefillSeconds: prefill, generationSeconds: Date().timeIntervalSince(t1), stoppedAtEOS: stopped)
    }
}

/// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
func completeUTF8PrefixLength(_ bytes: [UInt8]) -> Int {
    var i = bytes.count - 1
    var back = 0
    while i >= 0 && back < 4 {
        let b = bytes[i]
        if b & 0xC0 != 0x80 {
            let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            return back + 1 >= need ? bytes.count : i
        }
        i -= 1
        back += 1
    }
    return bytes.count
}

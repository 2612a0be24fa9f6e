import Foundation
import Transformer

/// ROME's fluency measure, generation entropy (Meng et al. 2022, ROME, §3 and Appendix D; EasyEdit's
/// `ngram_entropy` is the same formula): for a text split into words,
///   GE = (2/3·H₂ + 4/3·H₃) / 2,   H_n = −Σ_g f_g log₂ f_g,
/// f_g the relative frequency of the word n-gram g among the text's n-grams (H_n = 0 when the
/// text has fewer than n words). A text that repeats itself has low entropy; the papers' tables
/// print GE × 100 (GPT-2 XL: 626.6). Words are runs of letters and digits, an apostrophe with the
/// letters after it ("'s"), or any other single non-space character: close to, not the same as,
/// the NLTK `word_tokenize` of the reference code (which also keeps "3.5" and "U.S." together).
public enum GenerationEntropy {
    public static func words(_ text: String) -> [String] {
        var out: [String] = [], cur = ""
        func flush() { if !cur.isEmpty { out.append(cur); cur = "" } }
        for ch in text {
            if ch.isLetter || ch.isNumber {
                cur.append(ch)
            } else if ch == "'" || ch == "’" {
                // Starts a word that takes the letters after it; alone it is a word of its own.
                flush(); cur = String(ch)
            } else {
                flush()
                if !ch.isWhitespace { out.append(String(ch)) }
            }
        }
        flush()
        return out
    }

    /// H_n in bits over the word n-grams of `words`.
    public static func entropy(_ words: [String], n: Int) -> Double {
        precondition(n >= 1)
        guard words.count >= n else { return 0 }
        var counts: [[String]: Int] = [:]
        for i in 0...(words.count - n) { counts[Array(words[i..<(i + n)]), default: 0] += 1 }
        let total = Double(words.count - n + 1)
        return counts.values.reduce(0.0) { h, c in let f = Double(c) / total; return h - f * Foundation.log2(f) }
    }

    /// GE of one text (see above).
    public static func of(_ text: String) -> Double {
        let w = words(text)
        return (2.0 / 3.0 * entropy(w, n: 2) + 4.0 / 3.0 * entropy(w, n: 3)) / 2
    }
}

extension EditScorer {
    /// The mean GE over `prompts` of each prompt followed by its greedy continuation of `tokens`
    /// new tokens (fewer when the model ends the text); nil without prompts. ROME samples with
    /// top-k 5; greedy keeps the measure deterministic (and shows repetition more readily).
    public func generationEntropy(_ prompts: [String], tokens: Int) throws -> Double? {
        guard !prompts.isEmpty, tokens > 0 else { return nil }
        let gen = TextGenerator(model: model, tokenizer: tokenizer)
        var s = 0.0
        for p in prompts {
            let r = try gen.generate(prompt: p, maxTokens: tokens)
            s += GenerationEntropy.of(p + r.text)
        }
        return s / Double(prompts.count)
    }
}

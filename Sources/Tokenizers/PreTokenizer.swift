/// The pre-tokenizers of byte-level BPE models, as hand-written matchers equivalent to the
/// regular expressions they come from (no regex engine): text is split into pieces, and BPE
/// runs inside each piece.
///
/// - `.gpt2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
///   (GPT-2, and the `ByteLevel` pre-tokenizer of `tokenizers` with `use_regex`).
/// - `.llama3(maxDigits: 3)`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (Llama 3); `maxDigits: 1` is Qwen2's variant.
/// `splitDigits` first isolates every numeric character (the `Digits(individual_digits)`
/// pre-tokenizer of SmolLM/StarCoder-style tokenizers), then applies the pattern to each piece.
/// \p{L}, \p{N} are Unicode general categories L* and N*; \s is the Unicode White_Space property.
public struct PreTokenizer: Sendable, Equatable {
    public enum Pattern: Sendable, Equatable {
        case gpt2
        case llama3(maxDigits: Int)
        /// No regex: the whole text is one piece.
        case none
    }

    public var pattern: Pattern
    public var splitDigits: Bool
    public var addPrefixSpace: Bool

    public init(pattern: Pattern, splitDigits: Bool = false, addPrefixSpace: Bool = false) {
        self.pattern = pattern
        self.splitDigits = splitDigits
        self.addPrefixSpace = addPrefixSpace
    }

    /// Splits `text` into pieces whose concatenation is `text` (with a leading space if `addPrefixSpace`).
    public func split(_ text: String) -> [String] {
        var scalars = Array(text.unicodeScalars)
        if addPrefixSpace, let first = scalars.first, first != " " { scalars.insert(" ", at: 0) }
        var ranges: [Range<Int>] = []
        if splitDigits {
            var start = 0
            for i in 0..<scalars.count where Self.isNumber(scalars[i]) {
                if start < i { ranges.append(start..<i) }
                ranges.append(i..<i + 1)
                start = i + 1
            }
            if start < scalars.count { ranges.append(start..<scalars.count) }
        } else if !scalars.isEmpty {
            ranges = [0..<scalars.count]
        }
        var pieces: [String] = []
        for r in ranges {
            var i = r.lowerBound
            while i < r.upperBound {
                let n = matchLength(scalars, i, r.upperBound)
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[i..<i + n])
                pieces.append(String(view))
                i += n
            }
        }
        return pieces
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }
    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }
    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

    /// Length (>= 1) of the match starting at `i` (`i < end`).
    func matchLength(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        switch pattern {
        case .none: return end - i
        case .gpt2: return gpt2Match(s, i, end)
        case let .llama3(maxDigits): return llama3Match(s, i, end, maxDigits: maxDigits)
        }
    }

    private func run(_ s: [Unicode.Scalar], from j: Int, _ end: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
        var k = j
        while k < end && pred(s[k]) { k += 1 }
        return k
    }

    /// 's 't 're 've 'm 'll 'd at `i`, optionally case-insensitive: the length, or 0.
    private func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < end else { return 0 }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive && c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c
        }
        let a = lower(s[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
        guard i + 2 < end else { return 0 }
        let b = lower(s[i + 2])
        if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
        return 0
    }

    /// `\s+(?!\S)|\s+` at a whitespace character.
    private func whitespaceMatch(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        let j = run(s, from: i, end, Self.isSpace)
        if j == end { return j - i }
        // Followed by a non-space: leave the last space to prefix the next word, unless that empties the match.
        return j - i >= 2 ? j - i - 1 : j - i
    }

    private func gpt2Match(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        let c = s[i]
        let k = contraction(s, i, end, caseInsensitive: false)
        if k > 0 { return k }
        let start = (c == " " && i + 1 < end) ? i + 1 : i
        let d = s[start]
        if Self.isLetter(d) { return run(s, from: start, end, Self.isLetter) - i }
        if Self.isNumber(d) { return run(s, from: start, end, Self.isNumber) - i }
        if Self.isOther(d) { return run(s, from: start, end, Self.isOther) - i }
        return whitespaceMatch(s, i, end)
    }

    private func llama3Match(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, maxDigits: Int) -> Int {
        let c = s[i]
        let k = contraction(s, i, end, caseInsensitive: true)
        if k > 0 { return k }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if Self.isLetter(c) { return run(s, from: i, end, Self.isLetter) - i }
        if !Self.isNewline(c) && !Self.isNumber(c) && i + 1 < end && Self.isLetter(s[i + 1]) {
            return run(s, from: i + 1, end, Self.isLetter) - i
        }
        // \p{N}{1,maxDigits}
        if Self.isNumber(c) {
            var j = i
            while j < end && j - i < maxDigits && Self.isNumber(s[j]) { j += 1 }
            return j - i
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        let start = (c == " " && i + 1 < end) ? i + 1 : i
        if Self.isOther(s[start]) {
            let j = run(s, from: start, end, Self.isOther)
            return run(s, from: j, end, Self.isNewline) - i
        }
        // \s*[\r\n]+ : up to and including the last newline of the whitespace run.
        let j = run(s, from: i, end, Self.isSpace)
        var lastNewline = -1
        for t in i..<j where Self.isNewline(s[t]) { lastNewline = t }
        if lastNewline >= 0 { return lastNewline + 1 - i }
        return whitespaceMatch(s, i, end)
    }
}

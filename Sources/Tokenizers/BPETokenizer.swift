import Foundation

/// A byte-level BPE tokenizer (GPT-2, Llama 3, SmolLM, Qwen2 families).
///
/// Encoding: (1) the text is cut at added/special tokens (leftmost, longest match), which map to
/// their ids directly; (2) every other span is split by the `PreTokenizer`; (3) each piece's
/// UTF-8 bytes are spelled with `ByteLevel` characters and merged by BPE, always applying the
/// lowest-ranked merge present (all its occurrences, left to right) until none applies;
/// (4) `bosTokenId`/`eosTokenId` are added around the result when `addSpecialTokens` is true and
/// the tokenizer is configured to add them. Decoding concatenates token strings and maps the
/// byte-level characters back to bytes (invalid UTF-8 is repaired with U+FFFD).
///
/// Not supported (rejected at load): normalizers, byte fallback, subword prefixes/suffixes,
/// non-BPE models. Added-token flags lstrip/rstrip/single_word are not honoured.
public final class BPETokenizer: @unchecked Sendable {
    public struct AddedToken: Sendable, Equatable {
        public var id: Int
        public var content: String
        public var special: Bool
        public init(id: Int, content: String, special: Bool) { self.id = id; self.content = content; self.special = special }
    }

    public let vocabulary: [String]            // id -> token string
    public let tokenToId: [String: Int]
    public let addedTokens: [AddedToken]
    public let preTokenizer: PreTokenizer
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var addBos: Bool
    public var addEos: Bool

    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let byteIds: [Int32]                // byte value -> id of its byte-level character
    private let addedByFirstScalar: [UInt32: [(scalars: [Unicode.Scalar], id: Int)]]
    private let specialIds: Set<Int>
    private var cache: [String: [Int32]] = [:]
    private let lock = NSLock()

    /// - Parameters:
    ///   - vocabulary: token strings by id (byte-level spelling); ids without a token are "".
    ///   - merges: pairs in rank order (first = applied first).
    public init(vocabulary: [String], merges: [(String, String)], addedTokens: [AddedToken],
                preTokenizer: PreTokenizer, bosTokenId: Int? = nil, eosTokenId: Int? = nil,
                addBos: Bool = false, addEos: Bool = false, source: String = "tokenizer") throws {
        self.vocabulary = vocabulary
        var t2i: [String: Int] = [:]
        for (i, t) in vocabulary.enumerated() where !t.isEmpty && t2i[t] == nil { t2i[t] = i }
        tokenToId = t2i
        var byteIds = [Int32](repeating: -1, count: 256)
        // Some vocabularies lack bytes that never occur in UTF-8 text (SmolLM2 has no 0xC0, 0xF5...):
        // like `tokenizers` without an unk token, such bytes are dropped when encoding. A vocabulary
        // with none of the printable ASCII bytes is not byte-level at all and is refused.
        for b in 0..<256 {
            if let id = t2i[String(ByteLevel.byteToScalar[b])] { byteIds[b] = Int32(id) }
        }
        for b in 33..<127 where byteIds[b] < 0 { throw TokenizerError.missingByteToken(path: source, byte: UInt8(b)) }
        self.byteIds = byteIds
        var m: [UInt64: (Int32, Int32)] = [:]
        m.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = t2i[a], let ib = t2i[b], let ic = t2i[a + b] else {
                throw TokenizerError.unknownMergeToken(path: source, merge: "\(a) \(b)")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if m[key] == nil { m[key] = (Int32(rank), Int32(ic)) }
        }
        self.merges = m
        self.addedTokens = addedTokens
        var byFirst: [UInt32: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
        for t in addedTokens {
            let sc = Array(t.content.unicodeScalars)
            guard let f = sc.first else { continue }
            byFirst[f.value, default: []].append((sc, t.id))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
        addedByFirstScalar = byFirst
        specialIds = Set(addedTokens.filter(\.special).map(\.id))
        self.preTokenizer = preTokenizer
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.addBos = addBos
        self.addEos = addEos
    }

    public var vocabularySize: Int { vocabulary.count }

    public func isSpecial(_ id: Int) -> Bool { specialIds.contains(id) }

    /// Token ids of `text`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens, addBos, let b = bosTokenId { out.append(b) }
        let scalars = Array(text.unicodeScalars)
        var spanStart = 0
        var i = 0
        while i < scalars.count {
            if let candidates = addedByFirstScalar[scalars[i].value],
               let hit = candidates.first(where: { c in
                   i + c.scalars.count <= scalars.count && scalars[i..<i + c.scalars.count].elementsEqual(c.scalars)
               }) {
                encodeSpan(scalars[spanStart..<i], into: &out)
                out.append(hit.id)
                i += hit.scalars.count
                spanStart = i
            } else {
                i += 1
            }
        }
        encodeSpan(scalars[spanStart..<scalars.count], into: &out)
        if addSpecialTokens, addEos, let e = eosTokenId { out.append(e) }
        return out
    }

    private func encodeSpan(_ span: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        guard !span.isEmpty else { return }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: span)
        for piece in preTokenizer.split(String(view)) {
            for id in bpe(piece) { out.append(Int(id)) }
        }
    }

    /// BPE of one pre-tokenized piece (cached).
    func bpe(_ piece: String) -> [Int32] {
        lock.lock()
        if let hit = cache[piece] { lock.unlock(); return hit }
        lock.unlock()
        var word = piece.utf8.map { byteIds[Int($0)] }.filter { $0 >= 0 }
        while word.count > 1 {
            var best: (rank: Int32, id: Int32) = (Int32.max, -1)
            var bestPair: UInt64 = 0
            for k in 0..<word.count - 1 {
                let key = UInt64(UInt32(word[k])) << 32 | UInt64(UInt32(word[k + 1]))
                if let m = merges[key], m.rank < best.rank { best = m; bestPair = key }
            }
            guard best.id >= 0 else { break }
            let a = Int32(truncatingIfNeeded: bestPair >> 32), b = Int32(truncatingIfNeeded: bestPair & 0xFFFF_FFFF)
            var merged: [Int32] = []
            merged.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k + 1 < word.count && word[k] == a && word[k + 1] == b {
                    merged.append(best.id)
                    k += 2
                } else {
                    merged.append(word[k])
                    k += 1
                }
            }
            word = merged
        }
        lock.lock()
        if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
        cache[piece] = word
        lock.unlock()
        return word
    }

    /// The text of `ids`. Throws for an id outside the vocabulary.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, id < vocabulary.count else { throw TokenizerError.unknownTokenId(id) }
            if skipSpecialTokens && specialIds.contains(id) { continue }
            ByteLevel.decode(vocabulary[id], into: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes of one token (for streaming output that may split UTF-8 sequences).
    public func tokenBytes(_ id: Int) -> [UInt8] {
        guard id >= 0, id < vocabulary.count else { return [] }
        var bytes: [UInt8] = []
        ByteLevel.decode(vocabulary[id], into: &bytes)
        return bytes
    }
}

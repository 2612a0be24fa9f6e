import CLinearAlgebra
import Checkpoints
import Foundation
import Tensors
import Transformer
import Tokenizers

/// The uncentred second moment C = E[k kᵀ] of the keys (inputs of one layer's MLP output
/// matrix) over every token of a text corpus (ROME's `layer_stats`, Meng et al. 2022, §3.1), in
/// Float64, (I, I) row-major. Cached as a safetensors file named after the weight, the corpus
/// and the model's parameters (a content hash), so a second edit on the same layer is free.
public struct KeyStatistics: Sendable {
    public var weight: String
    public var dimension: Int
    public var tokens: Int
    public var moment: [Double]

    /// Collects statistics over `texts` (each cut into windows of `window` tokens, at most
    /// `maxTokens` tokens in all), 8 windows per pass, forward through the layers up to `layer` only.
    public static func collect(model: TransformerModel, tokenizer: BPETokenizer, texts: [String], layer: Int,
                               window: Int = 64, maxTokens: Int = 20_000) throws -> KeyStatistics {
        let weight = model.mlpOutputWeight(layer: layer)
        let I = model.config.intermediateSize
        var windows: [[Int]] = []
        var total = 0
        outer: for text in texts {
            let ids = tokenizer.encode(text)
            var s = 0
            while s < ids.count {
                let chunk = Array(ids[s..<min(s + window, ids.count)])
                s += window
                if chunk.count < 2 { continue }
                windows.append(chunk)
                total += chunk.count
                if total >= maxTokens { break outer }
            }
        }
        guard total > 0 else { throw EditError.invalidRequest("the statistics corpus has no tokens") }
        var moment = [Double](repeating: 0, count: I * I)
        var acc = [Float](repeating: 0, count: I * I)
        // Group windows of equal length so no padding rows enter the statistics.
        let groups = Dictionary(grouping: windows, by: \.count)
        for len in groups.keys.sorted() {
            let ws = groups[len]!
            var i = 0
            while i < ws.count {
                let part = Array(ws[i..<min(i + 8, ws.count)])
                i += 8
                let u = try model.mlpKeys(part, layer: layer)
                sgemm(transposeA: true, transposeB: false, m: I, n: I, k: u.count / I, alpha: 1, a: u, lda: I, b: u, ldb: I, beta: 0, c: &acc, ldc: I)
                for j in 0..<(I * I) { moment[j] += Double(acc[j]) }
            }
        }
        for j in 0..<(I * I) { moment[j] /= Double(total) }
        return KeyStatistics(weight: weight, dimension: I, tokens: total, moment: moment)
    }

    /// x = (C + λ·mean(diag C)·I)⁻¹ k by a Cholesky solve in Float64 (λ = `ridge`, which keeps
    /// the solve defined when the corpus has fewer tokens than keys have dimensions).
    public func solve(_ k: [Float], ridge: Double = 1e-3) throws -> [Float] {
        let n = dimension
        guard k.count == n else { throw EditError.invalidRequest("key of \(k.count) entries, statistics of \(n)") }
        var a = moment
        var trace = 0.0
        for i in 0..<n { trace += a[i * n + i] }
        let lam = ridge * max(trace / Double(n), 1e-12)
        for i in 0..<n { a[i * n + i] += lam }
        var b = k.map(Double.init)
        let info = LAPACKE_dposv(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(n), 1, &a, Int32(n), &b, 1)
        guard info == 0 else { throw EditError.numerical("Cholesky solve of the key statistics failed (info \(info))") }
        return b.map(Float.init)
    }

    /// Cache file name: weight, corpus and model content hashes.
    public static func cacheName(model: TransformerModel, texts: [String], layer: Int, window: Int, maxTokens: Int) -> String {
        var h = FNV1a()
        for t in texts { h.add(Array(t.utf8)); h.add([0]) }
        h.add(Array("\(window) \(maxTokens)".utf8))
        let corpus = h.value
        var m = FNV1a()
        let P = model.parameters
        // Only what the keys depend on: the embeddings and the layers up to `layer`.
        for e in model.layout.entries {
            if let l = layerIndex(e.name), l > layer { continue }
            let words = UnsafeRawBufferPointer(start: P.base + e.offset, count: e.count * 4)
            m.add(words)
        }
        let safe = model.mlpOutputWeight(layer: layer).replacingOccurrences(of: ".", with: "_")
        return "rome-stats-\(safe)-\(String(corpus, radix: 16))-\(String(m.value, radix: 16)).safetensors"
    }

    static func layerIndex(_ name: String) -> Int? {
        for p in ["model.layers.", "transformer.h."] where name.hasPrefix(p) {
            let rest = name.dropFirst(p.count)
            return rest.firstIndex(of: ".").flatMap { Int(rest[..<$0]) }
        }
        return nil
    }

    /// Loads the statistics from `directory` when cached there, else collects and stores them.
    public static func cached(in directory: URL, model: TransformerModel, tokenizer: BPETokenizer, texts: [String], layer: Int,
                              window: Int = 64, maxTokens: Int = 20_000) throws -> (KeyStatistics, fromCache: Bool) {
        let url = directory.appendingPathComponent(cacheName(model: model, texts: texts, layer: layer, window: window, maxTokens: maxTokens))
        let weight = model.mlpOutputWeight(layer: layer)
        let I = model.config.intermediateSize
        if FileManager.default.fileExists(atPath: url.path) {
            let f = try SafetensorsFile(url: url)
            let t = try f.tensor("moment")
            guard t.shape.dims == [I, I], let n = f.metadata["tokens"].flatMap(Int.init) else {
                throw EditError.cannotRead(path: url.path, reason: "expected a moment tensor of shape [\(I), \(I)] and a tokens count")
            }
            return (KeyStatistics(weight: weight, dimension: I, tokens: n, moment: t.scalars.map(Double.init)), true)
        }
        let s = try collect(model: model, tokenizer: tokenizer, texts: texts, layer: layer, window: window, maxTokens: maxTokens)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw EditError.cannotRead(path: directory.path, reason: "cannot create: \(error)")
        }
        let w = try SafetensorsWriter(url: url, entries: [TensorEntry(name: "moment", dtype: .f32, shape: Shape([I, I]))],
                                      metadata: ["tokens": "\(s.tokens)", "weight": weight])
        try w.write("moment", Tensor(shape: [I, I], scalars: s.moment.map(Float.init)))
        try w.finish()
        return (s, false)
    }
}

/// 64-bit FNV-1a over bytes (cache keys only, not security).
struct FNV1a {
    var value: UInt64 = 0xcbf29ce484222325
    mutating func add<B: Sequence>(_ bytes: B) where B.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x100000001b3 }
    }
}

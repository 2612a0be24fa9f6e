import Tensors

/// Tensor-name mapping between llama.cpp's GGUF names and Hugging Face checkpoint names for the
/// Llama family (`llama`, `mistral`, `qwen2` architectures share one table), and the inverse of
/// the row permutation llama.cpp's converter applies to the query and key projections.
///
/// | GGUF                       | Hugging Face                                   |
/// |----------------------------|------------------------------------------------|
/// | token_embd.weight          | model.embed_tokens.weight                      |
/// | output_norm.weight         | model.norm.weight                              |
/// | output.weight              | lm_head.weight                                 |
/// | blk.N.attn_norm.weight     | model.layers.N.input_layernorm.weight          |
/// | blk.N.attn_q/k/v.{weight,bias} | model.layers.N.self_attn.{q,k,v}_proj.*    |
/// | blk.N.attn_output.weight   | model.layers.N.self_attn.o_proj.weight         |
/// | blk.N.ffn_norm.weight      | model.layers.N.post_attention_layernorm.weight |
/// | blk.N.ffn_gate/up/down.weight | model.layers.N.mlp.{gate,up,down}_proj.weight |
///
/// `rope_freqs.weight` (llama3 rope scaling factors) has no Hugging Face tensor: it is derived
/// from `rope_scaling` in config.json, and `isDerived` says so.
public enum GGUFNaming {
    private static let global: [(String, String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ]
    private static let perLayer: [(String, String)] = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_q.bias", "self_attn.q_proj.bias"),
        ("attn_k.bias", "self_attn.k_proj.bias"),
        ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ]

    /// GGUF tensors with no Hugging Face counterpart because Hugging Face derives them from the config.
    public static func isDerived(_ ggufName: String) -> Bool { ggufName == "rope_freqs.weight" }

    /// The Hugging Face name of a GGUF llama-family tensor, or nil if the name is not in the table.
    public static func huggingFaceName(_ gguf: String) -> String? {
        if let g = global.first(where: { $0.0 == gguf }) { return g.1 }
        let parts = gguf.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let n = Int(parts[1]), n >= 0, String(n) == parts[1] else { return nil }
        guard let m = perLayer.first(where: { $0.0 == parts[2] }) else { return nil }
        return "model.layers.\(n).\(m.1)"
    }

    /// The GGUF name of a Hugging Face llama-family tensor, or nil.
    public static func ggufName(_ hf: String) -> String? {
        if let g = global.first(where: { $0.1 == hf }) { return g.0 }
        let prefix = "model.layers."
        guard hf.hasPrefix(prefix) else { return nil }
        let rest = hf.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]) else { return nil }
        let tail = String(rest[rest.index(after: dot)...])
        guard let m = perLayer.first(where: { $0.1 == tail }) else { return nil }
        return "blk.\(n).\(m.0)"
    }

    /// Which head count a GGUF tensor's rows were permuted with, if any: query rows by the
    /// number of attention heads, key rows by the number of key/value heads.
    public enum Permuted { case query, key }

    public static func permutation(of ggufName: String) -> Permuted? {
        if ggufName.hasSuffix(".attn_q.weight") || ggufName.hasSuffix(".attn_q.bias") { return .query }
        if ggufName.hasSuffix(".attn_k.weight") || ggufName.hasSuffix(".attn_k.bias") { return .key }
        return nil
    }

    /// llama.cpp's converter reorders the rows of each head from the Hugging Face "rotate half"
    /// layout [x_0..x_{d/2-1}, x_{d/2}..x_{d-1}] to interleaved pairs (x_0, x_{d/2}, x_1, ...):
    /// `w.reshape(heads, 2, d/2, ...).swapaxes(1, 2)`. This undoes it: GGUF row `h*d + 2i + j`
    /// becomes Hugging Face row `h*d + j*d/2 + i`. Works on weights (rows x cols) and biases (cols = 1).
    public static func unpermuteRows(_ t: Tensor, heads: Int) throws -> Tensor {
        try permuteRows(t, heads: heads, inverse: true)
    }

    /// The converter's permutation itself (Hugging Face -> GGUF), for writers and tests.
    public static func permuteRows(_ t: Tensor, heads: Int, inverse: Bool = false) throws -> Tensor {
        let rows = t.shape.rank == 0 ? 1 : t.shape[0]
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw TensorError.invalidArgument("cannot un-permute \(rows) rows into \(heads) heads of even size")
        }
        let cols = rows == 0 ? 0 : t.count / rows
        let d = rows / heads, half = d / 2
        var out = [Float](repeating: 0, count: t.count)
        t.scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for h in 0..<heads {
                    for i in 0..<half {
                        for j in 0..<2 {
                            let g = h * d + 2 * i + j      // GGUF row
                            let f = h * d + j * half + i   // Hugging Face row
                            let (from, to) = inverse ? (g, f) : (f, g)
                            for c in 0..<cols { dst[to * cols + c] = src[from * cols + c] }
                        }
                    }
                }
            }
        }
        return Tensor(shape: t.shape, scalars: out)
    }

    /// `{arch}.block_count`, checked against the tensors: the file must hold `blk.N.*` tensors for
    /// exactly N in 0..<block_count. A count read from metadata is never trusted alone (a
    /// block_count of 4294967295 otherwise makes a loader allocate layers without bound).
    public static func checkedBlockCount(_ gguf: GGUFFile, arch: String) throws -> Int {
        let key = "\(arch).block_count"
        let n = try gguf.metadata.int(key)
        var present = Set<Int>()
        for t in gguf.tensors where t.name.hasPrefix("blk.") {
            let rest = t.name.dropFirst(4)
            if let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) { present.insert(i) }
        }
        guard n > 0, n <= gguf.tensors.count else {
            throw GGUFError.invalidMetadata(path: gguf.url.path, key: key, reason: "\(n) blocks, but the file has \(present.count) (blk.N tensors)")
        }
        if let missing = (0..<n).first(where: { !present.contains($0) }) {
            throw GGUFError.invalidMetadata(path: gguf.url.path, key: key, reason: "\(n) blocks, but block \(missing) has no tensors")
        }
        if let extra = present.first(where: { $0 >= n }) {
            throw GGUFError.invalidMetadata(path: gguf.url.path, key: key, reason: "\(n) blocks, but the file has tensors of block \(extra)")
        }
        return n
    }
}

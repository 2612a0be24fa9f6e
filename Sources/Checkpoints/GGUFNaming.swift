import Tensors

/// The llama family's GGUF names (the table of `GGUFArchitecture.llama`, which holds every
/// architecture's table), the Q/K row permutation llama.cpp's converter applies for llama and
/// mistral and its inverse, and the block count checked against the tensors.
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
    /// GGUF tensors with no Hugging Face counterpart because Hugging Face derives them from the config.
    public static func isDerived(_ ggufName: String) -> Bool { ggufName == "rope_freqs.weight" }

    /// The Hugging Face name of a GGUF llama-family tensor, or nil if the name is not in the table.
    public static func huggingFaceName(_ gguf: String) -> String? { GGUFArchitecture.llama.huggingFaceName(gguf) }

    /// The GGUF name of a Hugging Face llama-family tensor, or nil.
    public static func ggufName(_ hf: String) -> String? { GGUFArchitecture.llama.ggufName(hf) }

    /// Which head count a GGUF tensor's rows were permuted with, if any: query rows by the
    /// number of attention heads, key rows by the number of key/value heads.
    public enum Permuted: Sendable { case query, key }

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

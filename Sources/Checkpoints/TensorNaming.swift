/// What the planner needs to know about tensor names, without architecture tables:
/// layer indices (mergekit's automatic inference: the first `.N.` component), embeddings and
/// tied output heads.
public enum TensorNaming {
    /// Splits `model.layers.12.mlp.up_proj.weight` into (`model.layers.`, 12, `.mlp.up_proj.weight`).
    public static func layerParts(_ name: String) -> (prefix: String, layer: Int, suffix: String)? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        for (i, p) in parts.enumerated() where i > 0 && i < parts.count - 1 {
            if let n = Int(p), n >= 0, p.allSatisfy(\.isNumber) {
                let prefix = parts[..<i].joined(separator: ".") + "."
                let suffix = "." + parts[(i + 1)...].joined(separator: ".")
                return (prefix, n, suffix)
            }
        }
        return nil
    }

    public static func layerIndex(_ name: String) -> Int? { layerParts(name)?.layer }

    /// The name with its layer index replaced.
    public static func renumber(_ name: String, to layer: Int) -> String {
        guard let p = layerParts(name) else { return name }
        return p.prefix + String(layer) + p.suffix
    }

    /// Token-embedding-like matrices (rows = vocabulary): input embeddings and output heads.
    public static func isVocabularyMatrix(_ name: String) -> Bool {
        let n = name.lowercased()
        return n.contains("embed_tokens") || n.hasSuffix("wte.weight") || n.contains("lm_head") || n.contains("embed_out")
            || n.contains("word_embeddings") || n.hasSuffix("output.weight") && !n.contains("layers")
    }

    public static func isOutputHead(_ name: String) -> Bool {
        name.hasSuffix("lm_head.weight") || name.hasSuffix("embed_out.weight")
    }

    /// Candidate tensors that stand in for a missing output head when embeddings are tied.
    public static let tiedEmbeddingNames = ["model.embed_tokens.weight", "transformer.wte.weight", "embed_tokens.weight",
                                            "model.embed_in.weight", "gpt_neox.embed_in.weight"]

    /// Pre-layer weights sort first (embeddings), then layers, then the rest (final norm, head).
    public static func outputOrder(_ a: String, _ b: String) -> Bool {
        func key(_ n: String) -> (Int, Int, String) {
            if let l = layerIndex(n) { return (1, l, n) }
            return (n.contains("embed") || n.contains("wte") || n.contains("wpe") ? 0 : 2, 0, n)
        }
        return key(a) < key(b)
    }
}

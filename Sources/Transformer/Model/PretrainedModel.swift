import Checkpoints
import Foundation
import Tokenizers

/// A model with its tokenizer, opened from what users have: a GGUF file (tokenizer from its
/// `tokenizer.ggml.*` metadata), a Hugging Face folder, or a safetensors file inside one
/// (config.json and tokenizer.json beside it).
public struct PretrainedModel: @unchecked Sendable {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer
    public let loadSeconds: Double
    /// The folder config.json and the tokenizer files come from: the model's folder, an adapter's
    /// base folder, or for a GGUF file the side folder rebuilt from its metadata
    /// (`ModelReference.sideFolder(of:)`). Commands that write a model copy these files from here.
    public let directory: URL

    /// `path` is any model reference (`ModelReference`); `base` is the base of an adapter or delta.
    /// A plain GGUF file is read natively (its quantised matrices stay packed for decoding).
    public init(path: String, base: String? = nil) throws {
        let t0 = Date()
        if path.hasSuffix(".gguf"), base == nil, FileManager.default.fileExists(atPath: path) {
            let gguf = try GGUFFile(path: path)
            model = try TransformerModel(gguf: gguf)
            tokenizer = try BPETokenizer(gguf: gguf)
            directory = try ModelReference.sideFolder(of: gguf)
        } else {
            let checkpoint = try ModelReference.open(path, base: base)
            model = try TransformerModel(checkpoint: checkpoint)
            guard let dir = checkpoint.directory else { throw ModelError.cannotRead(path: path, reason: "no folder with tokenizer.json") }
            tokenizer = try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
            directory = dir
        }
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw ModelError.invalidConfig(path: path, key: "vocab_size",
                                           reason: "the tokenizer has \(tokenizer.vocabularySize) tokens, the model \(model.config.vocabSize)")
        }
        loadSeconds = Date().timeIntervalSince(t0)
    }
}

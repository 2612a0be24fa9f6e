import Checkpoints
import Foundation

/// A model with its tokenizer, opened from what users have: a GGUF file (tokenizer from its
/// `tokenizer.ggml.*` metadata), a Hugging Face folder, or a safetensors file inside one
/// (config.json and tokenizer.json beside it).
public struct PretrainedModel: @unchecked Sendable {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer
    public let loadSeconds: Double

    public init(path: String) throws {
        let t0 = Date()
        if path.hasSuffix(".gguf") {
            let gguf = try GGUFFile(path: path)
            model = try TransformerModel(gguf: gguf)
            tokenizer = try BPETokenizer(gguf: gguf)
        } else {
            let checkpoint = try Checkpoint(path: path)
            model = try TransformerModel(checkpoint: checkpoint)
            guard let dir = checkpoint.directory else { throw ModelError.cannotRead(path: path, reason: "no folder with tokenizer.json") }
            tokenizer = try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        }
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw ModelError.invalidConfig(path: path, key: "vocab_size",
                                           reason: "the tokenizer has \(tokenizer.vocabularySize) tokens, the model \(model.config.vocabSize)")
        }
        loadSeconds = Date().timeIntervalSince(t0)
    }
}

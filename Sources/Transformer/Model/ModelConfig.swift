import Foundation

/// Errors in model configuration or weights, naming the file/key/tensor and expected vs actual.
public enum ModelError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotRead(path: String, reason: String)
    case invalidConfig(path: String, key: String, reason: String)
    case unsupportedModelType(path: String, modelType: String)
    case missingTensor(source: String, name: String)
    case shapeMismatch(source: String, tensor: String, expected: [Int], actual: [Int])
    case unexpectedTensor(source: String, name: String)
    case invalidInput(String)
    /// Weights with NaN/±Inf (`count` of `elements` in `tensor`), found while loading; or, with
    /// `tensor` "logits", a forward pass whose output is not finite.
    case nonFinite(source: String, tensor: String, count: Int, elements: Int)
    /// A score computed from the model (`what`, e.g. "mean NLL") is NaN or infinite.
    case nonFiniteScore(source: String, what: String, value: Double)

    public var description: String {
        switch self {
        case let .cannotRead(p, r): return "\(p): \(r)"
        case let .invalidConfig(p, k, r): return "\(p): \(k): \(r)"
        case let .unsupportedModelType(p, t): return "\(p): model_type \"\(t)\" is not supported (\(ModelFamilies.modelTypes.joined(separator: ", ")))"
        case let .missingTensor(s, n): return "\(s): missing tensor \"\(n)\""
        case let .shapeMismatch(s, t, e, a): return "\(s): tensor \"\(t)\" has shape \(a), expected \(e)"
        case let .unexpectedTensor(s, n): return "\(s): tensor \"\(n)\" is not a parameter of this model"
        case let .invalidInput(m): return m
        case let .nonFinite(s, "logits", c, n):
            return "\(s): the model's logits are not finite (\(c) of \(n) values NaN or infinite); its weights or inputs overflow"
        case let .nonFiniteScore(s, w, v):
            return "\(s): the \(w) is \(v.isNaN ? "NaN" : "\(v)"): the model's logits are not finite (NaN/infinite weights or an overflow)"
        case let .nonFinite(s, t, c, n):
            return "\(s): tensor \"\(t)\" has \(c) NaN/infinite values of \(n); refusing to run this model (--allow-nonfinite runs it anyway)"
        }
    }
}

/// A decoder-only transformer configuration, normalised across families: the sizes, and the
/// switches of the optional steps a family's block description uses. Each family's file
/// (Sources/Transformer/Families) reads its config.json keys and defaults into one.
public struct ModelConfig: Sendable, Equatable {
    /// A registered family (`ModelFamilies.all`), by name.
    public struct Family: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }
        public static let llama = Family("llama")
        public static let gpt2 = Family("gpt2")
        public static let qwen3 = Family("qwen3")
        public static let gemma2 = Family("gemma2")
        public static let gemma3 = Family("gemma3")
        public static let phi3 = Family("phi3")
    }
    public enum Activation: String, Sendable { case silu, geluTanh, gelu }

    /// Llama 3 RoPE frequency scaling (`rope_scaling.rope_type == "llama3"`).
    public struct Llama3RopeScaling: Sendable, Equatable {
        public var factor: Double
        public var lowFreqFactor: Double
        public var highFreqFactor: Double
        public var originalMaxPositions: Int
        public init(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int) {
            self.factor = factor; self.lowFreqFactor = lowFreqFactor; self.highFreqFactor = highFreqFactor
            self.originalMaxPositions = originalMaxPositions
        }
    }

    public var modelType: String
    public var family: Family
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var normEps: Float
    public var ropeTheta: Double
    public var ropeScaling: Llama3RopeScaling?
    public var maxPositions: Int
    public var tieEmbeddings: Bool
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// The MLP's activation (of the gate in a gated MLP).
    public var activation: Activation
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    /// Windowed attention: a query at position t sees the keys at t - slidingWindow + 1 ... t,
    /// on the layers `slidingLayers` marks (every layer when it is nil).
    public var slidingWindow: Int?
    public var slidingLayers: [Bool]?
    /// Per-head RMSNorm of q and k before the rotary embedding (Qwen3, Gemma 3).
    public var qkNorm = false
    /// RMSNorm scales by (offset + weight): 1 for Gemma, 0 otherwise.
    public var normWeightOffset: Float = 0
    /// The embeddings are multiplied by this (Gemma: √hidden).
    public var embeddingScale: Float?
    /// The attention scores' scale; nil is 1/√head_dim.
    public var attentionScale: Float?
    /// Scores become cap·tanh(score/cap) before the softmax (Gemma 2).
    public var attentionSoftcap: Float?
    /// Logits become cap·tanh(logit/cap) (Gemma 2).
    public var finalSoftcap: Float?
    /// The rotary base of the sliding layers when it differs from `ropeTheta` (Gemma 3).
    public var localRopeTheta: Double?
    /// Linear rope scaling of the global layers (inverse frequencies divided by it), or nil.
    public var ropeLinearFactor: Double?

    public init(modelType: String, family: Family, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                layers: Int, heads: Int, kvHeads: Int, headDim: Int, normEps: Float, ropeTheta: Double = 10000,
                ropeScaling: Llama3RopeScaling? = nil, maxPositions: Int, tieEmbeddings: Bool, qkvBias: Bool = false,
                outputBias: Bool = false, mlpBias: Bool = false, activation: Activation, bosTokenId: Int? = nil, eosTokenIds: [Int] = []) {
        self.modelType = modelType; self.family = family; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.normEps = normEps; self.ropeTheta = ropeTheta; self.ropeScaling = ropeScaling
        self.maxPositions = maxPositions; self.tieEmbeddings = tieEmbeddings; self.qkvBias = qkvBias
        self.outputBias = outputBias; self.mlpBias = mlpBias; self.activation = activation
        self.bosTokenId = bosTokenId; self.eosTokenIds = eosTokenIds
    }

    /// Reads a Hugging Face `config.json`.
    public init(configJSON url: URL) throws {
        let path = url.path
        let data: Data
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError.cannotRead(path: url.deletingLastPathComponent().path,
                                        reason: "no config.json: the model's architecture is unknown (a Hugging Face model folder has config.json beside its weights)")
        }
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.cannotRead(path: path, reason: "cannot read config: " + ((error as NSError).userInfo[NSUnderlyingErrorKey].map { "\($0)" } ?? error.localizedDescription))
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.invalidConfig(path: path, key: "(root)", reason: "not a JSON object")
        }
        try self.init(json: obj, path: path)
    }

    /// Parses a config.json object through the family registered for its `model_type`.
    public init(json c: [String: Any], path: String) throws {
        guard let type = c["model_type"] as? String else { throw ModelError.invalidConfig(path: path, key: "model_type", reason: "missing") }
        guard let definition = ModelFamilies.definition(modelType: type) else { throw ModelError.unsupportedModelType(path: path, modelType: type) }
        let reader = ConfigReader(json: c, path: path)
        self = try definition.config(reader)
        if block.rotary { ropeLinearFactor = try reader.ropeLinearFactor() }
        guard heads % kvHeads == 0 else {
            throw ModelError.invalidConfig(path: path, key: "num_key_value_heads", reason: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        guard !block.rotary || headDim % 2 == 0 else { throw ModelError.invalidConfig(path: path, key: "head_dim", reason: "\(headDim) is odd") }
        if let w = slidingWindow, w < 1 { throw ModelError.invalidConfig(path: path, key: "sliding_window", reason: "\(w) is not positive") }
        for (key, v) in [("attn_logit_softcapping", attentionSoftcap), ("final_logit_softcapping", finalSoftcap)] {
            if let v, !(v.isFinite && v > 0) { throw ModelError.invalidConfig(path: path, key: key, reason: "\(v) is not a positive number") }
        }
    }

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }
}

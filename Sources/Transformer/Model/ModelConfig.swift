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
        case let .unsupportedModelType(p, t): return "\(p): model_type \"\(t)\" is not supported (llama, mistral, qwen2, gpt2)"
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

/// A decoder-only transformer configuration, normalised across families. One configurable
/// block serves them all:
/// - llama / mistral / qwen2: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP; qwen2 has
///   q/k/v biases; llama may have `attention_bias` / `mlp_bias`.
/// - gpt2: LayerNorm, learned positions, fused qkv (Conv1D weights stored in x out), GELU (tanh) MLP,
///   biases everywhere, tied embeddings.
public struct ModelConfig: Sendable, Equatable {
    public enum Family: String, Sendable { case llama, gpt2 }
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
    public var activation: Activation
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    /// Mistral-style sliding-window attention width; sequences longer than it are refused
    /// (windowed attention is not implemented).
    public var slidingWindow: Int?

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

    public init(json c: [String: Any], path: String) throws {
        func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
            if let v = c[key], !(v is NSNull) {
                guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), i > 0 else {
                    throw ModelError.invalidConfig(path: path, key: key, reason: "expected a positive integer, got \(v)")
                }
                return i
            }
            guard let f = fallback else { throw ModelError.invalidConfig(path: path, key: key, reason: "missing") }
            return f
        }
        func double(_ key: String, _ fallback: Double) throws -> Double {
            guard let v = c[key], !(v is NSNull) else { return fallback }
            guard let n = v as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else {
                throw ModelError.invalidConfig(path: path, key: key, reason: "expected a positive number, got \(v)")
            }
            return n.doubleValue
        }
        func bool(_ key: String, _ fallback: Bool) throws -> Bool {
            guard let v = c[key], !(v is NSNull) else { return fallback }
            guard let b = v as? Bool else { throw ModelError.invalidConfig(path: path, key: key, reason: "expected true/false, got \(v)") }
            return b
        }
        func ids(_ key: String) -> [Int] {
            if let n = c[key] as? NSNumber { return [n.intValue] }
            if let a = c[key] as? [NSNumber] { return a.map(\.intValue) }
            return []
        }
        guard let type = c["model_type"] as? String else { throw ModelError.invalidConfig(path: path, key: "model_type", reason: "missing") }
        modelType = type
        bosTokenId = ids("bos_token_id").first
        eosTokenIds = ids("eos_token_id")
        switch type {
        case "llama", "mistral", "qwen2":
            family = .llama
            vocabSize = try int("vocab_size")
            hiddenSize = try int("hidden_size")
            intermediateSize = try int("intermediate_size")
            layers = try int("num_hidden_layers")
            heads = try int("num_attention_heads")
            kvHeads = try int("num_key_value_heads", heads)
            headDim = try int("head_dim", hiddenSize / heads)
            normEps = Float(try double("rms_norm_eps", 1e-6))
            // transformers 5 keeps rope settings in "rope_parameters"; 4.x in "rope_theta" + "rope_scaling".
            let ropeParameters = c["rope_parameters"] as? [String: Any]
            if let rp = ropeParameters, let t = rp["rope_theta"] {
                guard let n = t as? NSNumber, n.doubleValue > 0 else {
                    throw ModelError.invalidConfig(path: path, key: "rope_parameters.rope_theta", reason: "expected a positive number, got \(t)")
                }
                ropeTheta = n.doubleValue
            } else {
                ropeTheta = try double("rope_theta", 10000)
            }
            if let w = c["sliding_window"] as? NSNumber, c["use_sliding_window"] as? Bool ?? (type == "mistral") {
                slidingWindow = w.intValue
            }
            maxPositions = try int("max_position_embeddings", 2048)
            tieEmbeddings = try bool("tie_word_embeddings", false)
            let attentionBias = try bool("attention_bias", false)
            qkvBias = type == "qwen2" ? true : attentionBias
            outputBias = type == "qwen2" ? false : attentionBias
            mlpBias = try bool("mlp_bias", false)
            let act = c["hidden_act"] as? String ?? "silu"
            guard act == "silu" else { throw ModelError.invalidConfig(path: path, key: "hidden_act", reason: "\"\(act)\" (expected silu)") }
            activation = .silu
            ropeScaling = nil
            if let rs = (c["rope_scaling"] as? [String: Any]) ?? ropeParameters {
                let kind = rs["rope_type"] as? String ?? rs["type"] as? String ?? "?"
                switch kind {
                case "default": break
                case "llama3":
                    func num(_ k: String) throws -> Double {
                        guard let n = rs[k] as? NSNumber, n.doubleValue > 0 else {
                            throw ModelError.invalidConfig(path: path, key: "rope_scaling.\(k)", reason: "missing or not positive")
                        }
                        return n.doubleValue
                    }
                    ropeScaling = Llama3RopeScaling(factor: try num("factor"), lowFreqFactor: try num("low_freq_factor"),
                                                    highFreqFactor: try num("high_freq_factor"),
                                                    originalMaxPositions: Int(try num("original_max_position_embeddings")))
                default:
                    throw ModelError.invalidConfig(path: path, key: "rope_scaling.rope_type (or rope_parameters)", reason: "\"\(kind)\" is not supported (llama3 only)")
                }
            }
        case "gpt2":
            family = .gpt2
            vocabSize = try int("vocab_size")
            hiddenSize = try int("n_embd")
            intermediateSize = try int("n_inner", 4 * hiddenSize)
            layers = try int("n_layer")
            heads = try int("n_head")
            kvHeads = heads
            headDim = hiddenSize / heads
            normEps = Float(try double("layer_norm_epsilon", 1e-5))
            ropeTheta = 0
            ropeScaling = nil
            maxPositions = try int("n_positions", 1024)
            tieEmbeddings = try bool("tie_word_embeddings", true)
            qkvBias = true; outputBias = true; mlpBias = true
            let act = c["activation_function"] as? String ?? "gelu_new"
            switch act {
            case "gelu_new", "gelu_pytorch_tanh": activation = .geluTanh
            case "gelu": activation = .gelu
            default: throw ModelError.invalidConfig(path: path, key: "activation_function", reason: "\"\(act)\" is not supported")
            }
            if try bool("scale_attn_by_inverse_layer_idx", false) || !(try bool("scale_attn_weights", true)) {
                throw ModelError.invalidConfig(path: path, key: "scale_attn_weights", reason: "only the standard 1/sqrt(d) scaling is supported")
            }
        default:
            throw ModelError.unsupportedModelType(path: path, modelType: type)
        }
        guard heads % kvHeads == 0 else {
            throw ModelError.invalidConfig(path: path, key: "num_key_value_heads", reason: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        guard family == .gpt2 || headDim % 2 == 0 else { throw ModelError.invalidConfig(path: path, key: "head_dim", reason: "\(headDim) is odd") }
        guard family == .llama || hiddenSize % heads == 0 else {
            throw ModelError.invalidConfig(path: path, key: "n_head", reason: "\(heads) does not divide n_embd \(hiddenSize)")
        }
    }

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }
}

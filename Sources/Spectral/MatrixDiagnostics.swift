/// Every per-matrix quantity of Shuttleworth et al. 2024 (§3-§4) and the spectral statistics of the Spectral README for one adapted matrix of one fine-tune.
/// W0 is the base matrix, W the tuned one and ΔW = W − W0, all (rows = out, cols = in).
/// How a fine-tune's update is held: LoRA factors, or the dense difference W − W0 (written as
/// "lora" / "full" in JSON reports).
public enum UpdateKind: String, Sendable, Codable, Equatable {
    case lora, full
}

public struct MatrixDiagnostics: Sendable, Codable, Equatable {
    /// Base tensor name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    public var name: String
    /// Layer index parsed from the name (`layers.N.`, `h.N.`, `blocks.N.`), if any.
    public var layer: Int?
    /// Short module type, e.g. `q_proj`.
    public var moduleType: String
    public var rows: Int
    public var cols: Int
    /// lora (factored update) or full (dense W − W0).
    public var kind: UpdateKind
    public var loraRank: Int?
    public var loraAlpha: Double?
    public var loraScale: Double?
    /// ‖A‖_F and ‖B‖_F of the LoRA factors (scale not applied).
    public var loraNormA: Double?
    public var loraNormB: Double?

    /// All singular values of W0, descending.
    public var sigmaBase: [Float]
    /// Top singular values of W (k of them, or all when the full spectrum was asked for).
    public var sigmaTuned: [Float]
    /// Singular values of ΔW (r of them for LoRA; all for a dense update).
    public var sigmaUpdate: [Float]

    public var frobeniusBase: Double
    public var frobeniusUpdate: Double
    /// ‖ΔW‖_F / ‖W0‖_F.
    public var relativeFrobenius: Double
    /// σ_1(ΔW) / σ_1(W0).
    public var relativeSpectral: Double
    /// Effective rank (entropy, L1-normalised σ) of ΔW.
    public var effectiveRank: Double
    /// Stable rank Σσ²/σ_1² of ΔW.
    public var stableRank: Double
    /// r used for `topEnergy` (the LoRA rank of the adapter analysed, or the option).
    public var energyRank: Int
    /// Fraction of ‖ΔW‖_F² in its top `energyRank` directions.
    public var topEnergy: Double
    /// Smallest ranks reaching 50 / 90 / 99 % of ‖ΔW‖_F².
    public var rank50: Int
    public var rank90: Int
    public var rank99: Int
    public var intruders: IntruderProfile
    /// Amplification factor of ΔW's top `energyRank` directions (§E.6); nil for a zero update.
    public var amplification: Amplification?
    /// How W's top singular vectors were obtained: "gesdd", "randomized (angle bound 0.003)",
    /// "cache"; ΔW's similarly in `updateMethod`.
    public var tunedMethod: String
    public var updateMethod: String
}

/// Layer index and short module type from a tensor name.
public func parseModuleName(_ name: String) -> (layer: Int?, type: String) {
    let parts = name.split(separator: ".").map(String.init)
    var layer: Int?
    for (i, p) in parts.enumerated() where i + 1 < parts.count && ["layers", "h", "blocks", "layer"].contains(p) {
        if let n = Int(parts[i + 1]) { layer = n; break }
    }
    var core = parts
    if core.last == "weight" { core.removeLast() }
    return (layer, core.last ?? name)
}

import Checkpoints
import Foundation
import Tensors
import Transformer

/// Lottery-ticket sparse fine-tuning (LT-SFT, Ansell et al. 2022, §3), one iteration:
///
/// 1. phase 1 fine-tunes every eligible entry of the model (a full fine-tune of the eligible
///    tensors) from θ0;
/// 2. the K = round(density × N) eligible entries that moved most, |θ1 − θ0|, are selected by one
///    global threshold (the magnitude graft's rule: exactly K, ties to earlier tensors and lower
///    indices; the reference keeps every entry ≥ the threshold);
/// 3. the model is reset to θ0 and phase 2 fine-tunes only the selected entries with a fresh
///    AdamW (gradients masked, no update outside the mask, so those entries stay θ0 bit for bit);
/// 4. the result is the sparse delta φ = θ2 − θ0 at the K selected entries (Float32).
///
/// Eligibility is the graft's rule (embeddings, the head and norms excluded by default, like the
/// reference scripts' `--freeze_layer_norm` and a frozen head); tensors that are not eligible stay
/// frozen in both phases, so the delta describes the whole change. The optional L1 pull towards
/// θ0 (`full_l1_reg`/`sparse_l1_reg`, default 0 in the reference) is each phase's
/// `Trainer.Settings.l1Pull` (both phases start from θ0). Not implemented: several iterations
/// (`n_ft_iterations`, default 1) and dense "abs" tensors for a trained head.
/// Composition (Ansell et al. 2022) is θ0 + Σ φ_i: `BASE+DELTA` references and `compose`.
public enum LotteryTicketSFT {
    public struct Settings: Sendable {
        /// Fraction of the eligible entries kept (the reference's `ft_params_proportion`, 0.01).
        public var density: Double
        public var eligibility: GraftEligibility
        public var fullPhase: Trainer.Settings
        public var sparsePhase: Trainer.Settings
        public init(density: Double, eligibility: GraftEligibility, fullPhase: Trainer.Settings, sparsePhase: Trainer.Settings) {
            self.density = density
            self.eligibility = eligibility
            self.fullPhase = fullPhase
            self.sparsePhase = sparsePhase
        }
    }

    public enum Phase: String, Sendable { case full, sparse }

    public struct Result: Sendable {
        /// The selected entries (a mask over the eligible tensors, in layout order).
        public var mask: GraftMask
        /// θ2 − θ0 at the selected entries, one tensor per eligible tensor with a selected entry.
        public var delta: [SparseDeltaTensor]
        public var eligibleCount: Int
        public var eligibleTensors: Int
        public var fullHistory: [Trainer.Progress]
        public var sparseHistory: [Trainer.Progress]
        /// Held-out loss of θ0, θ1 (phase 1) and θ2 (phase 2), when held-out data was given.
        public var heldOutBase: Double?
        public var heldOutFull: Double?
        public var heldOutSparse: Double?
        /// Share of phase 1's squared movement Σ(θ1 − θ0)² that the selected entries hold.
        public var selectedEnergyShare: Double
    }

    /// Trains `model` in place: on return it holds θ2 = θ0 + φ. `progress` is called after every
    /// optimizer step of either phase.
    public static func train(model: TransformerModel, examples: [TrainingExample], heldOut: [TrainingExample] = [], settings: Settings,
                             progress: (Phase, Trainer.Progress) -> Void = { _, _ in }) throws -> Result {
        guard settings.density > 0, settings.density <= 1, settings.density.isFinite else {
            throw GraftError.invalidSettings("LT-SFT: density \(settings.density) is outside (0, 1]: give the fraction of the eligible parameters to train, e.g. 0.01")
        }
        let theta0 = ParameterBuffer(layout: model.layout)
        theta0.base.update(from: model.parameters.base, count: model.layout.totalCount)
        // The eligible tensors, checked once (finite values) through the pair of θ0 with itself.
        let eligible = try GraftPair(base: theta0, tuned: theta0, basePath: "base", tunedPath: "base", eligibility: settings.eligibility)
        let k = try eligible.keptCount(sparsity: settings.density)

        // Phase 1: every eligible entry trainable.
        let all = try SparseMask(model: model, entries: eligible.tensors.map { ($0.name, nil) })
        let full = try Trainer(model: model, mode: .sparse(all), settings: settings.fullPhase)
        let heldOutBase = heldOut.isEmpty ? nil : try full.heldOutLoss(heldOut)
        let fullHistory = try full.train(examples, heldOut: heldOut) { progress(.full, $0) }
        let heldOutFull = fullHistory.last?.heldOutLoss

        // Selection on |θ1 − θ0| (the pair's τ), then the reset to θ0.
        let theta1 = ParameterBuffer(layout: model.layout)
        theta1.base.update(from: model.parameters.base, count: model.layout.totalCount)
        let moved = try GraftPair(base: theta0, tuned: theta1, basePath: "base", tunedPath: "phase 1", eligibility: settings.eligibility)
        let mask = MagnitudeGraft.select(moved, count: k)
        let total = moved.totalEnergy()
        let selectedEnergyShare = total > 0 ? mask.energy(moved) / total : 0
        model.parameters.base.update(from: theta0.base, count: model.layout.totalCount)

        // Phase 2: only the selected entries, with a fresh optimizer and schedule.
        let sparse = try SparseMask(model: model, entries: mask.parts.map { ($0.name, $0.indices) })
        let second = try Trainer(model: model, mode: .sparse(sparse), settings: settings.sparsePhase)
        let sparseHistory = try second.train(examples, heldOut: heldOut) { progress(.sparse, $0) }

        let trained = try GraftPair(base: theta0, tuned: model.parameters, basePath: "base", tunedPath: "phase 2", eligibility: settings.eligibility)
        return Result(mask: mask, delta: mask.sparseDelta(trained), eligibleCount: eligible.eligibleCount, eligibleTensors: eligible.tensors.count,
                      fullHistory: fullHistory, sparseHistory: sparseHistory, heldOutBase: heldOutBase, heldOutFull: heldOutFull,
                      heldOutSparse: sparseHistory.last?.heldOutLoss, selectedEnergyShare: selectedEnergyShare)
    }
}

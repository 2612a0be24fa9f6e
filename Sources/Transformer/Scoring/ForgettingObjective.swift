import Foundation

/// Forgetting a behaviour by negation under a control constraint (Ilharco et al. 2023, "Editing
/// models with task arithmetic", §3): among the candidates whose score on every control set stays
/// at least `fraction` of the reference model's (the model before the negation; 0.95 in the
/// paper), prefer the one that scores worst on the target task.
///
/// Scores compared by a constraint: greedy exact match for `--metric em`, and for `--metric nll`
/// the per-token likelihood exp(−mean NLL) (the geometric mean of the completion tokens'
/// probabilities), so "95% of the base's" means a mean NLL at most −ln 0.95 ≈ 0.051 above it.
public struct ForgettingObjective: Sendable {
    public struct Constraint: Sendable {
        public let name: String
        /// Index of the control set in the candidates' `SoupScore.sets`.
        public let set: Int
        public let fraction: Double
        /// The reference model's score on the set (exact match, or exp(−NLL)).
        public let reference: Double
        public init(name: String, set: Int, fraction: Double, reference: Double) {
            self.name = name; self.set = set; self.fraction = fraction; self.reference = reference
        }
    }

    /// What the objective says of one candidate.
    public struct Verdict: Sendable {
        /// Mean over the target sets of the metric's loss (NLL, or 1 − exact match): larger is more forgotten.
        public let targetLoss: Double
        /// Mean NLL over the target sets (breaks exact-match ties).
        public let targetNLL: Double
        /// Control score / reference score, per constraint.
        public let retained: [Double]
        public let feasible: Bool
        /// Σ max(0, fraction − retained) over the constraints.
        public let shortfall: Double
        /// A value to minimise: −targetLoss when feasible, 10⁶·(1 + shortfall) when not, so that
        /// every feasible point ranks before every infeasible one and infeasible points are
        /// ordered by how far they miss.
        public var objective: Double { feasible ? -targetLoss : 1e6 * (1 + shortfall) }
    }

    public let metric: CandidateScorer.Metric
    /// Indices of the target sets in `SoupScore.sets`.
    public let targetSets: [Int]
    public let constraints: [Constraint]

    public init(metric: CandidateScorer.Metric, targetSets: [Int], constraints: [Constraint]) {
        self.metric = metric; self.targetSets = targetSets; self.constraints = constraints
    }

    /// A set's score as a constraint compares it.
    public static func controlScore(_ r: EvaluationResult, _ metric: CandidateScorer.Metric) -> Double {
        switch metric {
        case .em: r.exactMatch ?? 0
        case .nll: Foundation.exp(-r.meanNLL)
        }
    }

    /// Builds the constraints for control sets at `controlSets` of `reference`'s score.
    public init(metric: CandidateScorer.Metric, targetSets: [Int], controlSets: [(name: String, set: Int, fraction: Double)],
                reference: SoupScore) throws {
        var cs: [Constraint] = []
        for c in controlSets {
            guard c.fraction > 0, c.fraction <= 1, c.fraction.isFinite else {
                throw ModelError.invalidInput("--keep \(c.name): the fraction must be in (0, 1], got \(c.fraction)")
            }
            guard reference.sets.indices.contains(c.set) else { throw ModelError.invalidInput("--keep \(c.name): no such set") }
            let ref = Self.controlScore(reference.sets[c.set], metric)
            guard ref > 0 else {
                throw ModelError.invalidInput("--keep \(c.name): the reference model scores 0 on it by \(metric.rawValue); "
                                              + "nothing to keep (use --metric nll, or a control set it answers)")
            }
            cs.append(Constraint(name: c.name, set: c.set, fraction: c.fraction, reference: ref))
        }
        self.init(metric: metric, targetSets: targetSets, constraints: cs)
    }

    public func verdict(_ s: SoupScore) -> Verdict {
        let t = targetSets.map { s.sets[$0] }
        let n = Double(max(1, t.count))
        let nll = t.map(\.meanNLL).reduce(0, +) / n
        let loss = metric == .nll ? nll : 1 - t.map { $0.exactMatch ?? 0 }.reduce(0, +) / n
        var retained: [Double] = [], shortfall = 0.0, feasible = true
        for c in constraints {
            let r = Self.controlScore(s.sets[c.set], metric) / c.reference
            retained.append(r)
            // A candidate that scores NaN is never feasible.
            if !(r >= c.fraction) { feasible = false; shortfall += r.isNaN ? 1 : c.fraction - r }
        }
        if nll.isNaN { feasible = false; shortfall += 1 }
        return Verdict(targetLoss: loss, targetNLL: nll, retained: retained, feasible: feasible, shortfall: shortfall)
    }

    /// Whether `a` is preferred to `b`: feasible first; among feasible, the larger target loss,
    /// then the larger target NLL; among infeasible, the smaller shortfall. Equal: neither.
    public func isPreferred(_ a: Verdict, over b: Verdict) -> Bool {
        if a.feasible != b.feasible { return a.feasible }
        if !a.feasible { return a.shortfall < b.shortfall }
        return a.targetLoss != b.targetLoss ? a.targetLoss > b.targetLoss : a.targetNLL > b.targetNLL
    }

    /// The index of the preferred candidate (the first of equals), nil when none is feasible.
    public func best(_ scores: [SoupScore]) -> Int? {
        let v = scores.map(verdict)
        var best: Int? = nil
        for k in v.indices where v[k].feasible {
            if best == nil || isPreferred(v[k], over: v[best!]) { best = k }
        }
        return best
    }

    /// Parses `PATH=FRACTION` (the last `=` splits, so paths may contain one).
    public static func parseKeep(_ spec: String) throws -> (path: String, fraction: Double) {
        guard let eq = spec.lastIndex(of: "="), eq != spec.startIndex,
              let f = Double(spec[spec.index(after: eq)...]) else {
            throw ModelError.invalidInput("--keep expects CONTROL.jsonl=FRACTION (e.g. control.jsonl=0.95), got \(spec.prefix(200))")
        }
        guard f > 0, f <= 1, f.isFinite else {
            throw ModelError.invalidInput("--keep \(spec.prefix(200)): the fraction must be in (0, 1], got \(f)")
        }
        return (String(spec[..<eq]), f)
    }
}

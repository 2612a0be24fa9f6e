import Foundation
import Checkpoints

/// Every way a graft can be refused, naming the file, the tensor and the expected value.
public enum GraftError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A sparsity outside (0, 1].
    case invalidSparsity(value: Double)
    /// The sparsity keeps no entry of the eligible parameters (k rounds to 0).
    case emptyGraft(sparsity: Double, eligible: Int)
    /// A tensor of one model is absent from the other (`path` is the model that lacks it).
    case missingTensor(path: String, tensor: String)
    case shapeMismatch(tensor: String, basePath: String, baseShape: [Int], tunedPath: String, tunedShape: [Int])
    /// No tensor is eligible under the rule (the default, or `--include`).
    case noEligibleTensors(rule: String)
    case invalidPattern(pattern: String, reason: String)
    /// NaN or infinity in an eligible tensor (or in tuned − base).
    case nonFinite(path: String, tensor: String, index: Int)
    /// A `--pick` that is not one of the requested sparsities.
    case pickNotRequested(pick: Double, requested: [Double])
    /// A sparse delta that does not fit the model it is applied to.
    case deltaMismatch(path: String, tensor: String, reason: String)
    case invalidSettings(String)

    public var description: String {
        switch self {
        case let .invalidSparsity(v):
            return "sparsity \(v) is outside (0, 1]: give the fraction of the eligible parameters to graft, e.g. 0.0001"
        case let .emptyGraft(s, n):
            return "sparsity \(s) keeps round(\(s) × \(n)) = 0 of the \(n) eligible parameters; use a larger sparsity"
        case let .missingTensor(p, t):
            return "\(p): has no tensor \"\(t)\" (base and fine-tune must have the same tensors)"
        case let .shapeMismatch(t, bp, bs, tp, ts):
            return "tensor \"\(t)\": shape \(bs) in \(bp) but \(ts) in \(tp) (the fine-tune must have the base's architecture)"
        case let .noEligibleTensors(rule):
            return "no tensor is eligible for grafting under \(rule)"
        case let .invalidPattern(p, r):
            return "--include \"\(NamePattern.excerpt(p))\" \(r)"
        case let .nonFinite(p, t, i):
            return "\(p): tensor \"\(t)\" has a NaN or infinite value (or difference to the base) at linear index \(i)"
        case let .pickNotRequested(p, r):
            return "--pick \(p) is not one of the requested sparsities \(r.map { "\($0)" }.joined(separator: ","))"
        case let .deltaMismatch(p, t, r):
            return "\(p): tensor \"\(t)\": \(r)"
        case let .invalidSettings(s):
            return s
        }
    }
}

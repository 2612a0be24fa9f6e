import Foundation
import Tensors
import Transformer

/// A change to one weight matrix of a model: W' = W + delta (same shape and layout as W).
/// `apply` adds it to the model's parameters, `revert` subtracts it again.
public struct WeightEdit: Sendable {
    public var weight: String
    public var delta: Tensor

    public init(weight: String, delta: Tensor) { self.weight = weight; self.delta = delta }

    public func apply(to model: TransformerModel, sign: Float = 1) throws {
        guard let e = model.layout[weight], e.shape == delta.shape else {
            throw EditError.invalidRequest("cannot apply an edit of shape \(delta.shape.dims) to \(weight)")
        }
        // A GGUF-loaded model decodes few rows with quantised copies; those would miss the edit.
        if model.quantized[weight] != nil { model.quantizedRowLimit = 0 }
        let p = model.parameters.pointer(weight)
        for i in 0..<e.count { p[i] += sign * delta.scalars[i] }
    }

    public func revert(from model: TransformerModel) throws { try apply(to: model, sign: -1) }

    /// Frobenius norm and largest absolute entry of the change.
    public var frobeniusNorm: Double { delta.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
    public var maxAbs: Float { delta.scalars.reduce(0) { max($0, abs($1)) } }
}

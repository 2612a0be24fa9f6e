import Foundation
import Tensors
import Transformer

/// The inputs u (rows, in) and output gradients delta (rows, out) one linear layer saw in a
/// forward + backward pass of a batch, row-major, rows = B·T; `gradient` is dL/dW in the
/// weight's own layout; `lossSum` the summed NLL of the scored positions.
struct LinearCapture {
    var rows: Int
    var inFeatures: Int
    var outFeatures: Int
    var u: [Float]
    var delta: [Float]
    var gradient: [Float]
    var lossSum: Double
}

extension TransformerModel {
    /// The MLP output projection of layer `layer` (ROME's edited matrix, MEND's down/c_proj).
    public func mlpOutputWeight(layer: Int) -> String {
        block.name(layer, block.mlpOutput) + ".weight"
    }

    /// Whether a weight is stored (in, out) (GPT-2 Conv1D) rather than (out, in).
    func isInOut(_ weight: String) -> Bool { block.weightLayout == .inOut && layout[weight]?.shape.rank == 2 }

    /// Runs `batch` with gradients restricted to `weight` (the backward stops at its layer) and
    /// captures what that linear layer saw. `lossScale` scales the loss (1/n: mean NLL).
    func capture(_ batch: TrainingBatch, weight: String, lossScale: Float) throws -> LinearCapture {
        guard let e = layout[weight] else { throw EditError.invalidRequest("the model has no tensor \(weight)") }
        var l = ParameterLayout()
        l.add(weight, e.shape.dims)
        let grads = ParameterBuffer(layout: l)
        var cap: LinearCapture? = nil
        let sink = GradientSink(model: grads, linearHook: { r in
            guard r.weight == weight else { return }
            cap = LinearCapture(rows: r.rows, inFeatures: r.inFeatures, outFeatures: r.outFeatures,
                                u: Array(r.u), delta: Array(r.delta), gradient: [], lossSum: 0)
        })
        let loss = try accumulateGradients(batch, into: sink, lossScale: lossScale)
        guard var c = cap else { throw EditError.unsupported("the backward pass never reached \(weight)") }
        c.gradient = Array(UnsafeBufferPointer(start: grads.base, count: e.count))
        c.lossSum = loss
        return c
    }
}

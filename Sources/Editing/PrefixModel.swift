import Foundation
import Transformer

extension TransformerModel {
    /// A copy of the first `layers` blocks (embeddings, norm and head kept): a cheap model for
    /// capturing activations of a low layer, whose backward then starts just above it.
    func prefix(layers: Int) throws -> TransformerModel {
        guard layers >= 1, layers <= config.layers else { throw EditError.invalidRequest("prefix of \(layers) layers out of 1...\(config.layers)") }
        if layers == config.layers { return self }
        var c = config
        c.layers = layers
        let m = TransformerModel(config: c)
        for e in m.layout.entries {
            guard let src = layout[e.name] else { throw EditError.unsupported("prefix model: no tensor \(e.name)") }
            (m.parameters.base + e.offset).update(from: parameters.base + src.offset, count: e.count)
        }
        return m
    }
}

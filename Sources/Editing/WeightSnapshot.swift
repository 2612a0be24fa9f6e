import Foundation
import Transformer

/// The original values of the matrices that edits touch, saved the first time each is edited,
/// so that `restore` puts the model back bit for bit (subtracting a delta again, as
/// `WeightEdit.revert` does, is exact only up to rounding).
public final class WeightSnapshot {
    public let model: TransformerModel
    private var saved: [String: [Float]] = [:]

    public init(model: TransformerModel) { self.model = model }

    /// Names of the matrices saved so far.
    public var weights: [String] { saved.keys.sorted() }

    /// Saves the weight `edit` changes (if not saved yet) and applies the edit.
    public func apply(_ edit: WeightEdit) throws {
        if saved[edit.weight] == nil, let e = model.layout[edit.weight] {
            saved[edit.weight] = Array(UnsafeBufferPointer(start: model.parameters.pointer(edit.weight), count: e.count))
        }
        try edit.apply(to: model)
    }

    /// Writes every saved matrix back and forgets them.
    public func restore() {
        for (name, values) in saved { model.parameters.pointer(name).update(from: values, count: values.count) }
        saved = [:]
    }
}

import Checkpoints
import Foundation
import Tensors

/// Which entries of which tensors a sparse (masked) fine-tune may change: a buffer of 0/1 over
/// a subset of the model's tensors (same names and shapes). Tensors absent from the mask are
/// frozen. Stored as a safetensors file of the same names (nonzero = trainable).
public final class SparseMask: @unchecked Sendable {
    public let values: ParameterBuffer
    public var layout: ParameterLayout { values.layout }

    init(values: ParameterBuffer) { self.values = values }

    /// Reads a mask file; every tensor must be a parameter of `model` with its shape.
    public convenience init(url: URL, model: TransformerModel) throws {
        let file = try SafetensorsFile(url: url)
        let layout = try model.layout.subset(Set(file.tensorNames))
        let buf = ParameterBuffer(layout: layout)
        for e in layout.entries {
            let t = try file.tensor(e.name)
            try buf.set(e.name, Tensor(shape: t.shape, scalars: t.scalars.map { $0 != 0 ? 1 : 0 }), source: url.path)
        }
        self.init(values: buf)
    }

    /// The mask that makes exactly `entries` trainable: for each named tensor of `model`, the
    /// listed row-major linear indices (nil: every entry of the tensor). Tensors not named are
    /// frozen. Fails on a name that is not a parameter of `model` or an index outside it.
    public convenience init(model: TransformerModel, entries: [(name: String, indices: [Int]?)]) throws {
        let names = entries.map(\.name)
        guard Set(names).count == names.count else { throw ModelError.invalidInput("mask: a tensor is listed twice") }
        let buf = ParameterBuffer(layout: try model.layout.subset(Set(names)))
        for (name, indices) in entries {
            let e = buf.layout[name]!
            let p = buf.base + e.offset
            guard let indices else {
                for i in 0..<e.count { p[i] = 1 }
                continue
            }
            for i in indices {
                guard i >= 0, i < e.count else { throw ModelError.invalidInput("mask: index \(i) is outside tensor \"\(name)\" of \(e.count) entries") }
                p[i] = 1
            }
        }
        self.init(values: buf)
    }

    /// A seeded random mask keeping a fraction `density` of the entries of each tensor whose
    /// name matches `pattern` (a regular expression searched in the name; nil: all matrices).
    public static func random(model: TransformerModel, density: Double, pattern: String?, seed: UInt64) throws -> SparseMask {
        guard density > 0, density <= 1 else { throw ModelError.invalidInput("mask density must be in (0, 1], got \(density)") }
        let re: NSRegularExpression?
        do { re = try pattern.map { p throws(NamePattern.Failure) in try NamePattern.compile(p) } } catch {
            throw ModelError.invalidInput("the mask tensor pattern \"\(NamePattern.excerpt(pattern ?? ""))\" \(error)")
        }
        let names = model.layout.entries.filter { e in
            if let re { return re.firstMatch(in: e.name, range: NSRange(e.name.startIndex..., in: e.name)) != nil }
            return e.shape.rank == 2
        }.map(\.name)
        guard !names.isEmpty else { throw ModelError.invalidInput("no parameter matches the mask pattern \"\(NamePattern.excerpt(pattern ?? ""))\"") }
        let buf = ParameterBuffer(layout: try model.layout.subset(Set(names)))
        var rng = SeededRandom(seed: seed)
        for i in 0..<buf.layout.totalCount { buf.base[i] = rng.nextUniform() < density ? 1 : 0 }
        return SparseMask(values: buf)
    }

    public var trainableCount: Int { (0..<layout.totalCount).reduce(0) { $0 + (values.base[$1] != 0 ? 1 : 0) } }

    public func write(to url: URL) throws {
        let writer = try SafetensorsWriter(url: url, entries: layout.entries.map { TensorEntry(name: $0.name, dtype: .u8, shape: $0.shape) })
        for e in layout.entries {
            let bytes = (0..<e.count).map { UInt8(values.base[e.offset + $0] != 0 ? 1 : 0) }
            try bytes.withUnsafeBytes { try writer.write(e.name, rawBytes: $0) }
        }
        try writer.finish()
    }
}

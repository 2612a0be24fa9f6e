import Checkpoints
import Foundation
import Tensors

extension MendEditor {
    /// Saves the editor as one safetensors file: per transform key K ("d_inxd_out") tensors
    /// K.U0 (D, r), K.V0 (r, D), K.b0 (D), K.s0 and K.o0 (modes, D), the same with 1, K.mean and
    /// K.m2 (D, normalisation statistics); `edit_lrs` (matrices); metadata: the edited weight
    /// names (JSON list), each key's row count, the layout (linear or conv1d).
    /// Goes through `OutputFolder` (a single file): never over an input, an existing file only
    /// with `force`; the file appears atomically.
    public func save(to url: URL, force: Bool = false, inputs: [URL] = []) throws {
        let out = try OutputFolder.prepare(url, inputs: inputs, force: force, command: "train-editor", kind: .file)
        try out.write { staging in try writeFile(to: staging) }
    }

    /// Writes the editor file at `url` (a path that does not exist, normally an `OutputFolder`
    /// staging path); the layout is described at `save(to:)`.
    public func writeFile(to url: URL, allowNonFinite: Bool = false) throws {
        var entries: [TensorEntry] = [], tensors: [(String, Tensor)] = []
        var meta: [String: String] = ["format": "weightsmith-mend", "layout": conv1D ? "conv1d" : "linear"]
        let names = try JSONSerialization.data(withJSONObject: weights)
        meta["weights"] = String(decoding: names, as: UTF8.self)
        for key in transforms.keys.sorted() {
            let t = transforms[key]!
            let D = t.D, r = t.rank
            for j in 0..<2 {
                tensors += [("\(key).U\(j)", Tensor(shape: [D, r], scalars: t.U[j])), ("\(key).V\(j)", Tensor(shape: [r, D], scalars: t.V[j])),
                            ("\(key).b\(j)", Tensor(shape: [D], scalars: t.b[j])), ("\(key).s\(j)", Tensor(shape: [t.modes, D], scalars: t.s[j])),
                            ("\(key).o\(j)", Tensor(shape: [t.modes, D], scalars: t.o[j]))]
            }
            tensors += [("\(key).mean", Tensor(shape: [D], scalars: t.mean.map(Float.init))), ("\(key).m2", Tensor(shape: [D], scalars: t.m2.map(Float.init)))]
            meta["\(key).count"] = "\(Int(t.count))"
        }
        tensors.append(("edit_lrs", Tensor(shape: [editLRs.count], scalars: editLRs)))
        entries = tensors.map { TensorEntry(name: $0.0, dtype: .f32, shape: $0.1.shape) }
        let w = try SafetensorsWriter(url: url, entries: entries, metadata: meta, allowNonFinite: allowNonFinite)
        for (n, t) in tensors { try w.write(n, t) }
        try w.finish()
    }

    /// Loads an editor written by `save`.
    public static func load(_ url: URL) throws -> MendEditor {
        let f = try SafetensorsFile(url: url)
        guard f.metadata["format"] == "weightsmith-mend", let wj = f.metadata["weights"],
              let weights = (try? JSONSerialization.jsonObject(with: Data(wj.utf8))) as? [String] else {
            throw EditError.invalidEditor(path: url.path, reason: "metadata format=weightsmith-mend and a weights list expected")
        }
        let lrs = try f.tensor("edit_lrs").scalars
        guard lrs.count == weights.count else { throw EditError.invalidEditor(path: url.path, reason: "edit_lrs has \(lrs.count) entries for \(weights.count) weights") }
        var ts: [String: GradientTransform] = [:]
        for name in f.tensorNames where name.hasSuffix(".mean") {
            let key = String(name.dropLast(5))
            let parts = key.split(separator: "x").compactMap { Int($0) }
            let u0 = try f.tensor("\(key).U0"), s0 = try f.tensor("\(key).s0")
            guard parts.count == 2, u0.shape.rank == 2, s0.shape.rank == 2, u0.shape[0] == parts[0] + parts[1] else {
                throw EditError.invalidEditor(path: url.path, reason: "transform \(key) has inconsistent shapes")
            }
            let t = GradientTransform(inFeatures: parts[0], outFeatures: parts[1], rank: u0.shape[1], modes: s0.shape[0])
            for j in 0..<2 {
                func get(_ n: String, _ count: Int) throws -> [Float] {
                    let x = try f.tensor("\(key).\(n)\(j)").scalars
                    guard x.count == count else { throw EditError.invalidEditor(path: url.path, reason: "\(key).\(n)\(j) has \(x.count) values, expected \(count)") }
                    return x
                }
                t.U[j] = try get("U", t.D * t.rank); t.V[j] = try get("V", t.rank * t.D); t.b[j] = try get("b", t.D)
                t.s[j] = try get("s", t.modes * t.D); t.o[j] = try get("o", t.modes * t.D)
            }
            t.mean = try f.tensor("\(key).mean").scalars.map(Double.init)
            t.m2 = try f.tensor("\(key).m2").scalars.map(Double.init)
            t.count = Double(f.metadata["\(key).count"].flatMap(Int.init) ?? 0)
            ts[key] = t
        }
        return MendEditor(weights: weights, editLRs: lrs, transforms: ts, conv1D: f.metadata["layout"] == "conv1d")
    }
}

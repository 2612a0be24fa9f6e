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
        var (tensors, meta) = try tensorsAndMetadata(prefix: "")
        meta["format"] = "weightsmith-mend"
        let entries = tensors.map { TensorEntry(name: $0.0, dtype: .f32, shape: $0.1.shape) }
        let w = try SafetensorsWriter(url: url, entries: entries, metadata: meta, allowNonFinite: allowNonFinite)
        for (n, t) in tensors { try w.write(n, t) }
        try w.finish()
    }

    /// The tensors and metadata of the editor file, every name and key prefixed (a training
    /// checkpoint holds the current and the best editor side by side).
    func tensorsAndMetadata(prefix: String) throws -> ([(String, Tensor)], [String: String]) {
        var tensors: [(String, Tensor)] = []
        var meta: [String: String] = ["\(prefix)layout": conv1D ? "conv1d" : "linear"]
        let names = try JSONSerialization.data(withJSONObject: weights)
        meta["\(prefix)weights"] = String(decoding: names, as: UTF8.self)
        for key in transforms.keys.sorted() {
            let t = transforms[key]!
            let D = t.D, r = t.rank, k = prefix + key
            for j in 0..<2 {
                tensors += [("\(k).U\(j)", Tensor(shape: [D, r], scalars: t.U[j])), ("\(k).V\(j)", Tensor(shape: [r, D], scalars: t.V[j])),
                            ("\(k).b\(j)", Tensor(shape: [D], scalars: t.b[j])), ("\(k).s\(j)", Tensor(shape: [t.modes, D], scalars: t.s[j])),
                            ("\(k).o\(j)", Tensor(shape: [t.modes, D], scalars: t.o[j]))]
            }
            tensors += [("\(k).mean", Tensor(shape: [D], scalars: t.mean.map(Float.init))), ("\(k).m2", Tensor(shape: [D], scalars: t.m2.map(Float.init)))]
            meta["\(k).count"] = "\(Int(t.count))"
        }
        tensors.append(("\(prefix)edit_lrs", Tensor(shape: [editLRs.count], scalars: editLRs)))
        return (tensors, meta)
    }

    /// Loads an editor written by `save`.
    public static func load(_ url: URL) throws -> MendEditor {
        let f = try SafetensorsFile(url: url)
        guard f.metadata["format"] == "weightsmith-mend" else {
            throw EditError.invalidEditor(path: url.path, reason: "metadata format=weightsmith-mend and a weights list expected")
        }
        return try read(f, prefix: "", path: url.path)
    }

    /// The editor stored under `prefix` in `f` (see `tensorsAndMetadata(prefix:)`).
    static func read(_ f: SafetensorsFile, prefix: String, path: String) throws -> MendEditor {
        guard let wj = f.metadata["\(prefix)weights"],
              let weights = (try? JSONSerialization.jsonObject(with: Data(wj.utf8))) as? [String] else {
            throw EditError.invalidEditor(path: path, reason: "metadata format=weightsmith-mend and a weights list expected")
        }
        let lrs = try f.tensor("\(prefix)edit_lrs").scalars
        guard lrs.count == weights.count else { throw EditError.invalidEditor(path: path, reason: "edit_lrs has \(lrs.count) entries for \(weights.count) weights") }
        var ts: [String: GradientTransform] = [:]
        for name in f.tensorNames where name.hasPrefix(prefix) && name.hasSuffix(".mean") {
            let key = String(name.dropFirst(prefix.count).dropLast(5))
            let k = prefix + key
            let parts = key.split(separator: "x").compactMap { Int($0) }
            let u0 = try f.tensor("\(k).U0"), s0 = try f.tensor("\(k).s0")
            guard parts.count == 2, u0.shape.rank == 2, s0.shape.rank == 2, u0.shape[0] == parts[0] + parts[1] else {
                throw EditError.invalidEditor(path: path, reason: "transform \(key) has inconsistent shapes")
            }
            let t = GradientTransform(inFeatures: parts[0], outFeatures: parts[1], rank: u0.shape[1], modes: s0.shape[0])
            for j in 0..<2 {
                func get(_ n: String, _ count: Int) throws -> [Float] {
                    let x = try f.tensor("\(k).\(n)\(j)").scalars
                    guard x.count == count else { throw EditError.invalidEditor(path: path, reason: "\(key).\(n)\(j) has \(x.count) values, expected \(count)") }
                    return x
                }
                t.U[j] = try get("U", t.D * t.rank); t.V[j] = try get("V", t.rank * t.D); t.b[j] = try get("b", t.D)
                t.s[j] = try get("s", t.modes * t.D); t.o[j] = try get("o", t.modes * t.D)
            }
            t.mean = try f.tensor("\(k).mean").scalars.map(Double.init)
            t.m2 = try f.tensor("\(k).m2").scalars.map(Double.init)
            t.count = Double(f.metadata["\(k).count"].flatMap(Int.init) ?? 0)
            ts[key] = t
        }
        return MendEditor(weights: weights, editLRs: lrs, transforms: ts, conv1D: f.metadata["\(prefix)layout"] == "conv1d")
    }
}

import Checkpoints
import Foundation
import Tensors

/// Everything a MEND training run needs to continue where it stopped: the optimizer steps done,
/// the next training edit, both Adam states, and the early-stopping record (the best validation
/// loss, its step, the validations since, and a copy of the editor at that step).
public struct MendTrainingState {
    public var step = 0
    public var next = 0
    var adam = FlatAdam()
    var lrAdam = FlatAdam()
    public var bestLoss: Double? = nil
    public var bestSuccess: Double? = nil
    /// The edit-loss prompts and selection the best record was chosen under (`MendTrainingSettings`).
    public var objectiveKey: String? = nil
    public var bestStep = 0
    public var sinceBest = 0
    public var best: MendEditor? = nil
    public init() {}
}

/// A training checkpoint (`train-editor --checkpoint`): one safetensors file with the current
/// editor (`editor.` prefix), the best one (`best.`), the Adam moments (`adam.m.`, `adam.v.`,
/// `lradam.`), the normalisation statistics also in Float64 (so a resumed run continues bit for
/// bit), and in the metadata the counters and a fingerprint of the training edits, the edited
/// matrices and the rank, checked on resume.
public enum MendCheckpoint {
    static let format = "weightsmith-mend-checkpoint"

    /// A fingerprint of the training edits (prompt, subject, target, paraphrases, locality prompts, in order).
    public static func fingerprint(_ requests: [EditRequest]) -> String {
        var h = FNV1a()
        for r in requests {
            for s in [r.text, r.target, r.subject ?? ""] + r.paraphrases + r.localityPrompts { h.add(Array(s.utf8)); h.add([0]) }
            h.add([1])
        }
        return String(h.value, radix: 16)
    }

    /// Writes the checkpoint at `url` (a path that does not exist: an `OutputFolder` staging path).
    public static func write(to url: URL, editor: MendEditor, state: MendTrainingState, requests: [EditRequest]) throws {
        var (tensors, meta) = try editor.tensorsAndMetadata(prefix: "editor.")
        var doubles: [(String, [Double])] = []
        for key in editor.transforms.keys.sorted() {
            let t = editor.transforms[key]!
            doubles += [("editor.\(key).mean_f64", t.mean), ("editor.\(key).m2_f64", t.m2)]
        }
        if let best = state.best {
            let (bt, bm) = try best.tensorsAndMetadata(prefix: "best.")
            tensors += bt; meta.merge(bm) { a, _ in a }
            for key in best.transforms.keys.sorted() {
                let t = best.transforms[key]!
                doubles += [("best.\(key).mean_f64", t.mean), ("best.\(key).m2_f64", t.m2)]
            }
        }
        for (prefix, adam) in [("adam", state.adam), ("lradam", state.lrAdam)] {
            for name in adam.m.keys.sorted() {
                tensors.append(("\(prefix).m.\(name)", Tensor(shape: [adam.m[name]!.count], scalars: adam.m[name]!)))
                tensors.append(("\(prefix).v.\(name)", Tensor(shape: [adam.v[name]!.count], scalars: adam.v[name]!)))
            }
        }
        meta["format"] = format
        meta["step"] = "\(state.step)"; meta["next"] = "\(state.next)"
        meta["best_step"] = "\(state.bestStep)"; meta["since_best"] = "\(state.sinceBest)"
        if let b = state.bestLoss { meta["best_loss"] = "\(b.bitPattern)" }
        if let b = state.bestSuccess { meta["best_success"] = "\(b.bitPattern)" }
        if let k = state.objectiveKey { meta["objective"] = k }
        meta["requests"] = fingerprint(requests)
        meta["rank"] = "\(editor.transforms.values.first?.rank ?? 0)"
        let entries = tensors.map { TensorEntry(name: $0.0, dtype: .f32, shape: $0.1.shape) }
            + doubles.map { TensorEntry(name: $0.0, dtype: .f64, shape: Shape([$0.1.count])) }
        let w = try SafetensorsWriter(url: url, entries: entries, metadata: meta)
        for (n, t) in tensors { try w.write(n, t) }
        for (n, d) in doubles { try d.withUnsafeBytes { try w.write(n, rawBytes: $0) } }
        try w.finish()
    }

    /// Reads a checkpoint for a run that trains `fresh` (the editor the options describe) on
    /// `requests`: refused when its matrices, rank or training edits differ.
    public static func read(_ url: URL, fresh: MendEditor, requests: [EditRequest]) throws -> (editor: MendEditor, state: MendTrainingState) {
        let path = url.path
        let f = try SafetensorsFile(url: url)
        guard f.metadata["format"] == format else {
            throw EditError.invalidEditor(path: path, reason: "not a train-editor checkpoint (metadata format=\(format) expected)")
        }
        let editor = try MendEditor.read(f, prefix: "editor.", path: path)
        guard editor.weights == fresh.weights else {
            throw EditError.invalidEditor(path: path, reason: "the checkpoint edits \(editor.weights.count) matrices (\(editor.weights.first ?? "")...), these options \(fresh.weights.count) (\(fresh.weights.first ?? "")...): give the same --layers")
        }
        let rank = fresh.transforms.values.first?.rank ?? 0
        guard f.metadata["rank"] == "\(rank)" else {
            throw EditError.invalidEditor(path: path, reason: "the checkpoint's rank is \(f.metadata["rank"] ?? "?"), these options give \(rank): give the same --rank")
        }
        guard f.metadata["requests"] == fingerprint(requests) else {
            throw EditError.invalidEditor(path: path, reason: "the checkpoint was trained on other edit records than these \(requests.count): resume with the same data (and --split)")
        }
        func doubles(_ name: String, _ count: Int) throws -> [Double] {
            guard let info = f.info(name), info.dtype == .f64, info.shape.elementCount == count else {
                throw EditError.invalidEditor(path: path, reason: "\(name): \(count) float64 values expected")
            }
            return try f.withRawBytes(name) { Array($0.bindMemory(to: Double.self)) }
        }
        func exact(_ e: MendEditor, _ prefix: String) throws {
            for (key, t) in e.transforms {
                t.mean = try doubles("\(prefix)\(key).mean_f64", t.D)
                t.m2 = try doubles("\(prefix)\(key).m2_f64", t.D)
            }
        }
        try exact(editor, "editor.")
        var state = MendTrainingState()
        func int(_ k: String) throws -> Int {
            guard let v = f.metadata[k].flatMap(Int.init), v >= 0 else { throw EditError.invalidEditor(path: path, reason: "metadata \(k): a count expected") }
            return v
        }
        state.step = try int("step"); state.next = try int("next")
        state.bestStep = try int("best_step"); state.sinceBest = try int("since_best")
        state.bestLoss = f.metadata["best_loss"].flatMap(UInt64.init).map(Double.init(bitPattern:))
        state.bestSuccess = f.metadata["best_success"].flatMap(UInt64.init).map(Double.init(bitPattern:))
        // Checkpoints written before the choice existed were trained on the rephrase and kept by loss.
        state.objectiveKey = f.metadata["objective"] ?? "paraphrase/loss"
        if f.metadata["best.weights"] != nil {
            let best = try MendEditor.read(f, prefix: "best.", path: path)
            try exact(best, "best.")
            state.best = best
        }
        for (prefix, isLR) in [("adam", false), ("lradam", true)] {
            var a = FlatAdam()
            for name in f.tensorNames where name.hasPrefix("\(prefix).m.") {
                let key = String(name.dropFirst(prefix.count + 3))
                a.m[key] = try f.tensor(name).scalars
                a.v[key] = try f.tensor("\(prefix).v.\(key)").scalars
            }
            if isLR { state.lrAdam = a } else { state.adam = a }
        }
        return (editor, state)
    }
}

extension MendEditor {
    /// A deep copy (parameters, statistics, edit lrs).
    public func copy() -> MendEditor {
        MendEditor(weights: weights, editLRs: editLRs, transforms: transforms.mapValues { $0.copy() }, conv1D: conv1D)
    }
}

extension GradientTransform {
    func copy() -> GradientTransform {
        let t = GradientTransform(inFeatures: inFeatures, outFeatures: outFeatures, rank: rank, modes: modes)
        t.U = U; t.V = V; t.b = b; t.s = s; t.o = o
        t.count = count; t.mean = mean; t.m2 = m2
        return t
    }
}

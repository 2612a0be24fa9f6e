import Foundation
import Tensors

// MARK: - The tensors of GGUF files, adapters and deltas, as a Checkpoint reads them

/// A GGUF file (any `GGUFArchitecture`) seen as a Hugging Face checkpoint: tensors renamed,
/// dequantised and the converter's changes undone on request (`GGUFArchitecture.tensor`); config.json and the tokenizer files
/// rebuilt from the metadata into a small side folder (kept in the temporary directory, keyed
/// by the file's path, size and modification time).
enum GGUFTensors {
    static func checkpoint(path: String, label: String) throws -> Checkpoint {
        let gguf = try GGUFFile(path: path)
        let arch: String, architecture: GGUFArchitecture
        do { (arch, architecture) = try GGUFArchitecture.of(gguf) } catch GGUFError.invalidMetadata(_, _, let reason) {
            throw ModelReferenceError.unsupportedGGUF(path: path, reason: "cannot be read as a Hugging Face model: " + reason)
        }
        let plan = try architecture.plan(gguf, arch: arch)
        let (heads, kvHeads) = try architecture.headCounts(gguf, arch: arch)
        var entries: [String: (TensorInfo, ComputedTensors.Entry)] = [:]
        let short = gguf.url.lastPathComponent
        for (name, hf) in plan {
            let shape = architecture.huggingFaceShape(gguf.info(name)!)
            entries[hf] = (ComputedTensors.f32Info(hf, shape), .computed(label: "\(short):\(name)") {
                try architecture.tensor(gguf, name, heads: heads, kvHeads: kvHeads)
            })
        }
        let side = try sideFolder(gguf, arch: arch)
        let source = ComputedTensors(entries: entries, sourceURLs: [gguf.url])
        let c = Checkpoint(virtualPath: label, directory: side, source: source, metadata: ["format": "pt", "weightsmith.source": "gguf"])
        c.referenceKind = .gguf
        return c
    }

    /// config.json, tokenizer.json, tokenizer_config.json and generation_config.json of a GGUF file,
    /// written once per file (keyed by path, size and modification time) in the temporary directory.
    static func sideFolder(_ gguf: GGUFFile, arch: String) throws -> URL {
        let path = gguf.url.standardizedFileURL.path
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        var h: UInt64 = 0xcbf29ce484222325
        for b in "\(path)|\(gguf.fileSize)|\(mtime)".utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("weightsmith-gguf-\(getuid())")
        // `isDirectory: true` so that the URL is the same (trailing slash) whether or not the folder exists yet.
        let dir = root.appendingPathComponent(String(h, radix: 16) + "-" + gguf.url.deletingPathExtension().lastPathComponent, isDirectory: true)
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.appendingPathComponent("config.json").path) { return dir }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        let staging = root.appendingPathComponent(".staging-\(getpid())-\(UUID().uuidString)")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }
        // A vocabulary that is not byte-level BPE has no tokenizer.json (weights-only commands still work).
        try GGUFConverter.writeSideFiles(of: gguf, arch: arch, dtype: .f32, into: staging, tokenizerRequired: false)
        if rename(staging.path, dir.path) != 0 && !fm.fileExists(atPath: dir.appendingPathComponent("config.json").path) {
            throw CheckpointError.io(path: dir.path, message: "cannot create the GGUF side folder: " + String(cString: strerror(errno)))
        }
        return dir
    }
}

/// A PEFT LoRA adapter merged onto its base, as PEFT's `merge_and_unload` does:
/// `W' = W + scale · B A` for every adapted module (transposed for `fan_in_fan_out`), the
/// `modules_to_save` tensors replaced by the adapter's copies, every other tensor the base's.
enum AdapterTensors {
    static func checkpoint(adapter: LoRAAdapter, base: Checkpoint, label: String) throws -> Checkpoint {
        try adapter.validate(against: base)
        var entries: [String: (TensorInfo, ComputedTensors.Entry)] = [:]
        let modules = Dictionary(uniqueKeysWithValues: adapter.modules.map { ($0.baseTensorName, $0) })
        let short = adapter.directory.lastPathComponent
        for name in base.tensorNames {
            let info = base.info(name)!
            if let m = modules[name] {
                entries[name] = (ComputedTensors.f32Info(name, info.shape), .computed(label: "\(short)+base") {
                    var w = try base.tensor(name)
                    let d = try adapter.delta(m)
                    if m.baseIsTransposed {
                        let rows = m.outFeatures, cols = m.inFeatures  // d is (m, n); w is stored (n, m)
                        for i in 0..<rows { for j in 0..<cols { w.scalars[j * rows + i] += d.scalars[i * cols + j] } }
                    } else {
                        for i in w.scalars.indices { w.scalars[i] += d.scalars[i] }
                    }
                    return w
                })
            } else if let key = adapter.savedModules[name] {
                let saved = adapter.file.info(key)!
                guard saved.shape == info.shape else {
                    throw AdapterError.baseShapeMismatch(module: name, tensor: key, expected: info.shape, actual: saved.shape)
                }
                let file = adapter.file
                entries[name] = (ComputedTensors.f32Info(name, info.shape), .computed(label: "\(short):modules_to_save") { try file.tensor(key) })
            } else {
                entries[name] = (info, .passthrough(base, name))
            }
        }
        let source = ComputedTensors(entries: entries, sourceURLs: base.sourceURLs + [adapter.directory])
        var meta = base.metadata
        meta["weightsmith.source"] = "adapter_on_base"
        let c = Checkpoint(virtualPath: label, directory: base.directory, source: source, metadata: meta)
        c.referenceKind = .adapterOnBase
        return c
    }
}

/// A task vector (dense, `weightsmith.kind = task_vector`) or a sparse delta added to its base.
enum DeltaTensors {
    static func checkpoint(deltaPath: String, sparse: Bool, base: Checkpoint, label: String) throws -> Checkpoint {
        var entries: [String: (TensorInfo, ComputedTensors.Entry)] = [:]
        var sources = base.sourceURLs
        var deltaNames: [String: Shape] = [:]
        var make: (String) throws -> Tensor
        if sparse {
            let file = try deltaPath.hasSuffix(".safetensors") ? deltaPath : singleSafetensors(in: deltaPath)
            let d = try SparseDeltaFile(path: file)
            deltaNames = d.shapes
            sources.append(URL(fileURLWithPath: deltaPath))
            make = { name in
                var w = try base.tensor(name)
                try d.sparse(name).add(into: &w)
                return w
            }
        } else {
            let tv = try Checkpoint(path: deltaPath)
            for n in tv.tensorNames { deltaNames[n] = tv.info(n)!.shape }
            sources += tv.sourceURLs
            make = { name in
                var w = try base.tensor(name)
                let t = try tv.tensor(name)
                for i in w.scalars.indices { w.scalars[i] += t.scalars[i] }
                return w
            }
        }
        for (name, shape) in deltaNames.sorted(by: { $0.key < $1.key }) {
            guard let info = base.info(name) else {
                throw ModelReferenceError.deltaMismatch(reference: label, tensor: name, reason: "not in the base \(base.path)")
            }
            guard info.shape == shape else {
                throw ModelReferenceError.deltaMismatch(reference: label, tensor: name, reason: "shape \(shape) in the delta, \(info.shape) in the base")
            }
        }
        let short = URL(fileURLWithPath: deltaPath).lastPathComponent
        for name in base.tensorNames {
            let info = base.info(name)!
            if deltaNames[name] != nil {
                entries[name] = (ComputedTensors.f32Info(name, info.shape), .computed(label: "\(short)+base") { try make(name) })
            } else {
                entries[name] = (info, .passthrough(base, name))
            }
        }
        var meta = base.metadata
        meta["weightsmith.source"] = "delta_on_base"
        let c = Checkpoint(virtualPath: label, directory: base.directory, source: ComputedTensors(entries: entries, sourceURLs: sources),
                           metadata: meta)
        c.referenceKind = .deltaOnBase
        return c
    }

    static func singleSafetensors(in dir: String) throws -> String {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
        guard names.count == 1 else { throw CheckpointError.notACheckpoint(path: dir, reason: "expected one sparse-delta .safetensors file") }
        return dir + "/" + names[0]
    }
}

import Foundation
import Tensors

/// One place that turns what a user types for a model into a `Checkpoint`:
///
/// | reference                         | resolves to                                                     |
/// |-----------------------------------|-----------------------------------------------------------------|
/// | `DIR` (Hugging Face folder)       | its safetensors (single or sharded through the index)           |
/// | `FILE.safetensors`, `*.index.json`| that file, config.json beside it                                |
/// | `FILE.gguf`                       | every tensor dequantised on request, Hugging Face names         |
/// | `ADAPTER` (PEFT folder)           | merged on request onto `base_model_name_or_path` or `--base`    |
/// | `BASE+ADAPTER` (mergekit syntax)  | the adapter merged onto BASE                                    |
/// | `BASE+DELTA`                      | a task vector or sparse delta added to BASE                     |
/// | `org/name[@revision]`             | a snapshot in the local Hugging Face cache (offline)            |
///
/// A task vector (metadata `weightsmith.kind = task_vector`) or a sparse delta (metadata
/// `format = weightsmith-sparse-delta`) is not a model: it is refused where a model is needed
/// unless given with its base. Each part of `BASE+X` is itself any reference.
public enum ModelReference {
    /// What a reference resolved to.
    public enum Kind: String, Sendable, Equatable {
        /// Safetensors shards (a folder, file or index).
        case safetensors
        /// A GGUF file, dequantised.
        case gguf
        /// A PEFT LoRA adapter merged onto its base.
        case adapterOnBase = "adapter_on_base"
        /// A task vector by itself (only with `allowDeltas`).
        case taskVector = "task_vector"
        /// A sparse delta by itself (only with `allowDeltas`).
        case sparseDelta = "sparse_delta"
        /// A task vector or sparse delta added to its base.
        case deltaOnBase = "delta_on_base"
    }

    /// The `__metadata__` key weightsmith writes on task vectors (`task-vector extract`).
    public static let kindKey = "weightsmith.kind"
    public static let taskVectorKind = "task_vector"

    /// What a local path holds, by its files (not by its name alone).
    public enum Format: String, Sendable { case checkpoint, gguf, adapter, taskVector = "task vector", sparseDelta = "sparse delta" }

    /// Resolves `spec` (see the table above).
    /// - Parameters:
    ///   - base: the base for an adapter or delta given alone (`--base`); ignored for full models.
    ///   - allowDeltas: return a task vector or sparse delta given alone as it is (compose).
    ///   - searchDirectory: a second folder to try relative paths in (a recipe's folder).
    ///   - environment: where `HF_HUB_CACHE` / `HF_HOME` are read (tests pass their own).
    ///   - fileFolder: a `.safetensors` file takes config.json and tokenizer files from its folder
    ///     (false for `convert`, which copies a lone file's tensors only).
    public static func open(_ spec: String, base: String? = nil, allowDeltas: Bool = false, searchDirectory: String? = nil,
                            fileFolder: Bool = true,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Checkpoint {
        var ctx = Context(searchDirectory: searchDirectory, environment: environment)
        ctx.adoptFileFolder = fileFolder
        return try ctx.open(spec, base: base, allowDeltas: allowDeltas)
    }

    /// The local path a single (no `+`) reference names: the path itself, the path in
    /// `searchDirectory`, or the hub-cache snapshot of `org/name[@revision]`.
    public static func localPath(_ spec: String, searchDirectory: String? = nil,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try Context(searchDirectory: searchDirectory, environment: environment).local(spec)
    }

    /// What the local `path` holds.
    public static func format(of path: String) throws -> Format {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.fileNotFound(path: path) }
        if isDir.boolValue {
            if fm.fileExists(atPath: path + "/adapter_config.json") { return .adapter }
            // A folder holding only a sparse delta (a graft folder also holds the model: that wins).
            let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            let weights = names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
            if weights.count == 1, !names.contains("model.safetensors"), let m = try? SafetensorsFile.metadata(path: path + "/" + weights[0]),
               SparseDelta.isSparseDelta(metadata: m) { return .sparseDelta }
        } else {
            if isGGUF(path) { return .gguf }
            let name = (path as NSString).lastPathComponent
            if name == "adapter_model.safetensors",
               fm.fileExists(atPath: ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("adapter_config.json")) {
                return .adapter
            }
            if path.hasSuffix(".safetensors"), let m = try? SafetensorsFile.metadata(path: path) {
                // The metadata alone decides both (a single file's metadata is its checkpoint's);
                // the file is validated when it is opened as what it is.
                if SparseDelta.isSparseDelta(metadata: m) { return .sparseDelta }
                return m[kindKey] == taskVectorKind ? .taskVector : .checkpoint
            }
        }
        if let c = try? Checkpoint(path: path), c.metadata[kindKey] == taskVectorKind { return .taskVector }
        return .checkpoint
    }

    /// True when the file starts with the GGUF magic (whatever its name).
    static func isGGUF(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let magic = (try? h.read(upToCount: 4)) ?? Data()
        return magic == Data("GGUF".utf8)
    }

    // MARK: - Hugging Face cache

    /// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`,
    /// else `~/.cache/huggingface/hub` (the layout of `huggingface_hub`).
    public static func hubCache(environment env: [String: String]) -> URL {
        if let c = env["HF_HUB_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        if let h = env["HF_HOME"], !h.isEmpty { return URL(fileURLWithPath: h).appendingPathComponent("hub") }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("huggingface/hub") }
        let home = env["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/huggingface/hub")
    }

    /// `org/name` or `org/name@revision` (revision: a branch, tag or commit hash).
    public static func parseHubID(_ spec: String) -> (repo: String, revision: String?)? {
        let parts = spec.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let repo = parts[0]
        let names = repo.split(separator: "/", omittingEmptySubsequences: false)
        func ok(_ s: Substring) -> Bool {
            !s.isEmpty && s.first != "." && s.first != "-" && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        }
        guard names.count == 2, names.allSatisfy(ok), !repo.contains("..") else { return nil }
        if parts.count == 2 {
            let r = parts[1]
            guard !r.isEmpty, !r.contains(".."), r.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-/".contains($0)) }) else { return nil }
            return (repo, r)
        }
        return (repo, nil)
    }

    /// The snapshot folder of `repo` at `revision` (default `main`) in the hub cache.
    public static func hubSnapshot(repo: String, revision: String?, environment: [String: String]) throws -> String {
        let cache = hubCache(environment: environment)
        let folder = cache.appendingPathComponent("models--" + repo.replacingOccurrences(of: "/", with: "--"))
        let rev = revision ?? "main"
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder.path) else {
            throw ModelReferenceError.notInHubCache(id: repo, revision: rev, cache: cache.path, reason: "\(folder.lastPathComponent) is not there")
        }
        var hash = rev
        let refFile = folder.appendingPathComponent("refs").appendingPathComponent(rev)
        if let data = fm.contents(atPath: refFile.path) {
            hash = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !hash.isEmpty, !hash.contains("/"), !hash.contains("..") else {
                throw ModelReferenceError.notInHubCache(id: repo, revision: rev, cache: cache.path, reason: "refs/\(rev) does not hold a commit hash")
            }
        }
        let snapshot = folder.appendingPathComponent("snapshots").appendingPathComponent(hash)
        guard !rev.contains("/") || hash != rev, fm.fileExists(atPath: snapshot.path) else {
            let known = ((try? fm.contentsOfDirectory(atPath: folder.appendingPathComponent("refs").path)) ?? []).sorted()
            throw ModelReferenceError.notInHubCache(id: repo, revision: rev, cache: cache.path,
                reason: "no snapshot for revision \"\(rev)\"" + (known.isEmpty ? "" : " (refs: \(known.joined(separator: ", ")))"))
        }
        return snapshot.path
    }

    // MARK: - Resolution

    struct Context {
        var searchDirectory: String?
        var environment: [String: String]
        /// A `.safetensors` file takes config.json and the tokenizer from its folder when they are there.
        var adoptFileFolder = true

        func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: p) }

        /// A single reference (no `+`) as a local path, or nil if it names nothing.
        func localIfAny(_ spec: String) -> String? {
            if exists(spec) { return spec }
            if !spec.hasPrefix("/"), let dir = searchDirectory {
                let p = URL(fileURLWithPath: dir).appendingPathComponent(spec).path
                if exists(p) { return p }
            }
            if let (repo, rev) = parseHubID(spec) { return try? hubSnapshot(repo: repo, revision: rev, environment: environment) }
            return nil
        }

        func local(_ spec: String) throws -> String {
            if let p = localIfAny(spec) { return p }
            if let (repo, rev) = parseHubID(spec) {
                do { _ = try hubSnapshot(repo: repo, revision: rev, environment: environment) } catch let e as ModelReferenceError {
                    throw ModelReferenceError.notFound(reference: spec, hub: e.description)
                }
            }
            throw ModelReferenceError.notFound(reference: spec, hub: nil)
        }

        /// `BASE+X` split at the first `+` where both sides name something.
        func split(_ spec: String) -> (String, String)? {
            var i = spec.startIndex
            while let r = spec[i...].firstIndex(of: "+") {
                let left = String(spec[..<r]), right = String(spec[spec.index(after: r)...])
                if !left.isEmpty, !right.isEmpty, localIfAny(right) != nil, localIfAny(left) != nil || split(left) != nil {
                    return (left, right)
                }
                i = spec.index(after: r)
            }
            return nil
        }

        func open(_ spec: String, base: String?, allowDeltas: Bool) throws -> Checkpoint {
            if localIfAny(spec) == nil, let (left, right) = split(spec) {
                return try openLocal(try local(right), label: spec, base: left, explicitBase: true, allowDeltas: allowDeltas)
            }
            let path = try local(spec)
            return try openLocal(path, label: spec, base: base, explicitBase: false, allowDeltas: allowDeltas)
        }

        func openBase(_ base: String, for label: String, origin: String) throws -> Checkpoint {
            do {
                return try open(base, base: nil, allowDeltas: false)
            } catch {
                throw ModelReferenceError.baseUnavailable(reference: label, base: base, origin: origin, underlying: "\(error)")
            }
        }

        func openLocal(_ path: String, label: String, base: String?, explicitBase: Bool, allowDeltas: Bool) throws -> Checkpoint {
            let format = try ModelReference.format(of: path)
            let hubNote = path != label && parseHubID(label) != nil ? " (Hugging Face cache: \(path))" : ""
            switch format {
            case .checkpoint, .gguf:
                if explicitBase {
                    throw ModelReferenceError.baseNotApplicable(reference: label, format: format.rawValue == "checkpoint" ? "full model" : "GGUF model")
                }
                if format == .gguf {
                    let c = try GGUFTensors.checkpoint(path: path, label: label)
                    c.referenceDescription = "GGUF file \(path), dequantised to F32" + hubNote
                    return c
                }
                let c = try Checkpoint(path: path, adoptFolder: adoptFileFolder)
                if !hubNote.isEmpty { c.referenceDescription = "safetensors" + hubNote }
                return c
            case .adapter:
                let adapter = try LoRAAdapter(path: path)
                let origin: String
                let baseSpec: String
                if let base {
                    baseSpec = base
                    origin = explicitBase ? "BASE+ADAPTER" : "--base"
                } else if let b = adapter.config.baseModelNameOrPath, !b.isEmpty {
                    // A relative base path is tried from here, then from the adapter's folder.
                    let besideAdapter = adapter.directory.appendingPathComponent(b).path
                    baseSpec = !b.hasPrefix("/") && !exists(b) && exists(besideAdapter) ? besideAdapter : b
                    origin = "base_model_name_or_path in adapter_config.json"
                } else {
                    throw ModelReferenceError.adapterWithoutBase(reference: label)
                }
                let baseCkpt = try openBase(baseSpec, for: label, origin: origin)
                let c = try AdapterTensors.checkpoint(adapter: adapter, base: baseCkpt, label: label)
                c.referenceDescription = "PEFT adapter \(adapter.directory.path) merged onto \(baseSpec) (from \(origin))" + hubNote
                return c
            case .taskVector, .sparseDelta:
                guard let base else {
                    if allowDeltas {
                        let c = try Checkpoint(path: path)
                        c.referenceKind = format == .taskVector ? .taskVector : .sparseDelta
                        return c
                    }
                    throw ModelReferenceError.deltaWithoutBase(reference: label, format: format.rawValue)
                }
                let baseCkpt = try openBase(base, for: label, origin: explicitBase ? "BASE+DELTA" : "--base")
                let c = try DeltaTensors.checkpoint(deltaPath: path, sparse: format == .sparseDelta, base: baseCkpt, label: label)
                c.referenceDescription = "\(format.rawValue) \(path) added to \(base)" + hubNote
                return c
            }
        }
    }
}

/// Why a model reference cannot be used, naming the reference and what to do next.
extension ModelReference {
    /// The folder with config.json and the tokenizer files rebuilt from a GGUF file's metadata
    /// (as `convert-gguf` writes them): what a command copies beside weights it writes for a model
    /// read from that GGUF file.
    public static func sideFolder(of gguf: GGUFFile) throws -> URL {
        try GGUFTensors.sideFolder(gguf, arch: try gguf.metadata.string("general.architecture"))
    }
}

public enum ModelReferenceError: Error, Equatable, CustomStringConvertible, Sendable {
    case notFound(reference: String, hub: String?)
    case notInHubCache(id: String, revision: String, cache: String, reason: String)
    case deltaWithoutBase(reference: String, format: String)
    case adapterWithoutBase(reference: String)
    case baseUnavailable(reference: String, base: String, origin: String, underlying: String)
    case baseNotApplicable(reference: String, format: String)
    case deltaMismatch(reference: String, tensor: String, reason: String)
    case unsupportedGGUF(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(r, hub):
            return "\(r): no such file or directory" + (hub.map { "; as a Hugging Face id: \($0)" } ?? "")
        case let .notInHubCache(id, rev, cache, reason):
            return "\(id)@\(rev) is not in the local Hugging Face cache \(cache): \(reason) (set HF_HUB_CACHE or HF_HOME, or download it first, e.g. `huggingface-cli download \(id)`; weightsmith never downloads)"
        case let .deltaWithoutBase(r, f):
            return "\(r) is a \(f), not a model: give it with its base as BASE+\(r) (or --base BASE), or use it in `compose`"
        case let .adapterWithoutBase(r):
            return "\(r) is a PEFT adapter without base_model_name_or_path: give its base as BASE+\(r) or --base BASE"
        case let .baseUnavailable(r, b, o, u):
            return "\(r): its base \"\(b)\" (\(o)) cannot be opened: \(u)"
        case let .baseNotApplicable(r, f):
            return "\(r): the part after \"+\" is a \(f), not an adapter, task vector or sparse delta"
        case let .deltaMismatch(r, t, why):
            return "\(r): tensor \"\(t)\": \(why)"
        case let .unsupportedGGUF(p, why):
            return "\(p): \(why)"
        }
    }
}

// MARK: - Virtual tensors

/// Tensors a `Checkpoint` computes on request.
protocol VirtualTensorSource: AnyObject, Sendable {
    var infos: [String: TensorInfo] { get }
    var sourceURLs: [URL] { get }
    func label(of name: String) -> String
    func tensor(_ name: String) throws -> Tensor
    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    func release(_ name: String)
}

/// Tensors either passed through from another checkpoint (bytes and dtype unchanged) or
/// computed as Float32; a computed tensor is kept from its first `withRawBytes` until
/// `release` (the merge executor reads it chunk by chunk, then releases it).
final class ComputedTensors: VirtualTensorSource, @unchecked Sendable {
    enum Entry {
        case passthrough(Checkpoint, String)
        case computed(label: String, () throws -> Tensor)
    }
    let infos: [String: TensorInfo]
    let sourceURLs: [URL]
    private let entries: [String: Entry]
    private var cache: [String: Tensor] = [:]
    private let lock = NSLock()

    init(entries: [String: (TensorInfo, Entry)], sourceURLs: [URL]) {
        self.infos = entries.mapValues { $0.0 }
        self.entries = entries.mapValues { $0.1 }
        self.sourceURLs = sourceURLs
    }

    static func f32Info(_ name: String, _ shape: Shape) -> TensorInfo {
        TensorInfo(name: name, dtype: .f32, shape: shape, dataOffsets: 0..<(shape.elementCount * 4))
    }

    func label(of name: String) -> String {
        switch entries[name] {
        case let .passthrough(c, n)?: return c.fileLabel(of: n) ?? c.path
        case let .computed(label, _)?: return label
        case nil: return "?"
        }
    }

    private func computed(_ name: String, keep: Bool) throws -> Tensor {
        guard case let .computed(_, make)? = entries[name] else { throw CheckpointError.tensorNotFound(path: "virtual", name: name) }
        if let t = lock.withLock({ cache[name] }) { return t }
        let t = try make()
        guard t.shape == infos[name]!.shape else {
            throw CheckpointError.invalidShape(path: label(of: name), tensor: name, reason: "computed \(t.shape), expected \(infos[name]!.shape)")
        }
        if keep { lock.withLock { cache[name] = t } }
        return t
    }

    func tensor(_ name: String) throws -> Tensor {
        switch entries[name] {
        case let .passthrough(c, n)?: return try c.tensor(n)
        default: return try computed(name, keep: false)
        }
    }

    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch entries[name] {
        case let .passthrough(c, n)?: return try c.withRawBytes(n, body)
        default:
            let t = try computed(name, keep: true)
            return try t.scalars.withUnsafeBytes(body)
        }
    }

    func release(_ name: String) {
        switch entries[name] {
        case let .passthrough(c, n)?: c.releasePages(n)
        default: _ = lock.withLock { cache.removeValue(forKey: name) }
        }
    }
}

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

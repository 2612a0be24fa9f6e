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

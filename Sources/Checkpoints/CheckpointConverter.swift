import Foundation
import Tensors

/// Rewrites a checkpoint with another floating dtype and/or sharding (`weightsmith convert`).
///
/// Streams tensor by tensor (raw bytes -> chunked conversion -> writer), releasing each input
/// tensor's pages after use, so memory stays near a scratch buffer plus one tensor's pages.
/// Only floating tensors (F16, BF16, F32, F64) change dtype; integer and BOOL tensors are copied
/// unchanged (as `transformers` does with `torch_dtype`), and FP8/C64 tensors make a dtype change
/// fail rather than be guessed. Output:
/// - a path ending in `.safetensors`: one file (no sharding allowed);
/// - otherwise a folder: `model.safetensors` or shards + index, plus the input folder's config,
///   tokenizer and generation files.
/// The output goes through `OutputFolder` (checked before any work, staged beside its final path,
/// renamed into place when complete): inputs are never overwritten, and an existing output is
/// replaced only with `force` (a folder only when it is a previous weightsmith output).
/// When tensors change dtype, `config.json`'s `torch_dtype` (and transformers 5's `dtype`) is
/// updated to match; other side files are copied byte for byte.
/// The input's `__metadata__` is kept, with `"format": "pt"` added when absent (transformers
/// refuses to load safetensors weights without it).
public enum CheckpointConverter {
    public struct Options: Sendable {
        public var dtype: DType?
        public var maxShardBytes: Int?
        /// Per-tensor storage dtypes, used where `dtype` is nil (merge-adapter keeps the base's dtypes).
        public var tensorDTypes: [String: DType] = [:]
        /// Write NaN/±Inf values instead of failing with `CheckpointError.nonFinite` (`--allow-nonfinite`).
        public var allowNonFinite = false
        /// Check the input and the output path and return the summary of what would be written
        /// (tensors, bytes, files), writing nothing (`--dry-run`).
        public var dryRun = false
        public init(dtype: DType? = nil, maxShardBytes: Int? = nil, allowNonFinite: Bool = false) {
            self.dtype = dtype
            self.maxShardBytes = maxShardBytes
            self.allowNonFinite = allowNonFinite
        }
    }

    public struct Summary: Sendable {
        public var tensors = 0
        public var converted = 0
        /// Names of non-floating tensors kept in their dtype although a dtype was asked for.
        public var keptDType: [String] = []
        public var bytesIn = 0
        public var bytesOut = 0
        public var files: [String] = []
        public var copiedFiles: [String] = []
    }

    /// Folder files copied next to the weights: configs, tokenizer and generation settings.
    public static func isSideFile(_ name: String) -> Bool {
        if name.hasSuffix(".safetensors") || name.hasSuffix(".index.json") || name.hasPrefix(".") { return false }
        let prefixes = ["config", "generation_config", "tokenizer", "special_tokens_map", "added_tokens", "vocab",
                        "merges", "chat_template", "preprocessor_config", "adapter_config"]
        return prefixes.contains { name.hasPrefix($0) }
    }

    /// Converts `input` into `output` (a `.safetensors` file or a folder) through `OutputFolder`:
    /// the output path is checked (never an input, inside or above one; an existing output only
    /// with `force`, and for a folder only a previous weightsmith output) before any tensor is read,
    /// and the result appears atomically.
    public static func convert(input: String, output: String, options: Options = Options(), force: Bool = false) throws -> Summary {
        try convert(checkpoint: ModelReference.open(input, fileFolder: false), output: output, options: options, force: force)
    }

    /// Bakes a PEFT LoRA adapter into its base, as PEFT's `merge_and_unload` does
    /// (`W + scale · B A` per adapted module, `modules_to_save` replaced), through `OutputFolder`;
    /// every tensor keeps the base's dtype unless `dtype` is given. `base` and `adapter` are model
    /// references (the base may be a GGUF file or a hub id; the adapter must be a PEFT adapter).
    public static func mergeAdapter(base: String, adapter: String, output: String, dtype: DType? = nil, force: Bool = false,
                                    allowNonFinite: Bool = false) throws -> Summary {
        let local = try ModelReference.localPath(adapter)
        guard try ModelReference.format(of: local) == .adapter else {
            throw CheckpointError.notACheckpoint(path: adapter, reason: "not a PEFT adapter (no adapter_config.json); merge-adapter takes BASE ADAPTER")
        }
        let merged = try ModelReference.open(local, base: base)
        let baseCkpt = try ModelReference.open(base)
        var options = Options(dtype: dtype, allowNonFinite: allowNonFinite)
        for n in baseCkpt.tensorNames { options.tensorDTypes[n] = baseCkpt.info(n)!.dtype }
        do {
            return try convert(checkpoint: merged, output: output, options: options, force: force)
        } catch let CheckpointError.nonFinite(p, t, c, n, _) {
            // Only on failure: say whether the base already held the values or the adapter brought them.
            let inBase = baseCkpt.info(t).map { info in
                (try? baseCkpt.withRawBytes(t) { NonFinite.count(raw: $0, dtype: info.dtype) }) ?? 0
            } ?? 0
            throw CheckpointError.nonFinite(path: p, tensor: t, count: c, elements: n,
                                            input: inBase > 0 ? "the base \(base) (\(inBase) in its tensor)" : "the adapter \(adapter) merged onto \(base)")
        }
    }

    static func convert(checkpoint: Checkpoint, output: String, options: Options, force: Bool) throws -> Summary {
        let input = checkpoint.path
        let fm = FileManager.default
        let singleFile = output.hasSuffix(".safetensors")
        if singleFile, options.maxShardBytes != nil {
            throw CheckpointError.invalidWriterEntry(path: output, reason: "--shard-size needs a folder as output, not a .safetensors file")
        }
        let inputs = checkpoint.sourceURLs
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "convert",
                                           kind: singleFile ? .file : .directory)

        // Plan the entries: the new dtype for floating tensors, the stored one otherwise.
        var entries: [TensorEntry] = []
        var summary = Summary()
        for name in naturalSorted(checkpoint.tensorNames) {
            guard let info = checkpoint.info(name) else { continue }
            var dtype = info.dtype
            if let target = options.dtype ?? options.tensorDTypes[name], target != info.dtype {
                if [.f16, .bf16, .f32, .f64].contains(info.dtype) {
                    dtype = target
                    summary.converted += 1
                } else if info.dtype.isFloatingPoint || info.dtype == .c64 {
                    let path = checkpoint.shard(of: name)?.url.relativePath ?? input
                    throw CheckpointError.conversion(path: path, tensor: name,
                                                     underlying: .unsupportedConversion(from: info.dtype, to: target, context: name))
                } else {
                    summary.keptDType.append(name)
                }
            }
            entries.append(TensorEntry(name: name, dtype: dtype, shape: info.shape))
            summary.bytesIn += info.byteCount
        }
        // Larger elements first, as the official writer orders them: every tensor then starts at a
        // multiple of its element size (the header is padded to 8), so zero-copy readers can map it.
        entries.sort { a, b in
            a.dtype.byteSize != b.dtype.byteSize ? a.dtype.byteSize > b.dtype.byteSize : naturalOrder(a.name, b.name)
        }
        summary.tensors = entries.count
        var metadata = checkpoint.metadata
        if metadata["format"] == nil { metadata["format"] = "pt" }
        summary.bytesOut = entries.reduce(0) { $0 + $1.byteCount }
        if options.dryRun {
            if singleFile {
                summary.files = [out.url.lastPathComponent]
            } else {
                let layout = try CheckpointWriter(directory: out.url, entries: entries, maxShardBytes: options.maxShardBytes, metadata: metadata)
                summary.files = layout.shardFileNames + (layout.shardFileNames.count > 1 ? ["model.safetensors.index.json"] : [])
                if let dir = checkpoint.directory {
                    summary.copiedFiles = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter(isSideFile).sorted()
                }
            }
            return summary
        }

        // Copies every tensor, converting in chunks, releasing input pages as it goes.
        func stream(_ write: (String, UnsafeRawBufferPointer, DType) throws -> Void) throws {
            for e in entries {
                guard let info = checkpoint.info(e.name) else { continue }
                // NaN/±Inf are counted by the writer in its copy/convert loop; the error names the input.
                try namingNonFiniteInput(checkpoint.fileLabel(of: e.name).map { "\(input) (\($0))" } ?? input) {
                    try checkpoint.withRawBytes(e.name) { raw in try write(e.name, raw, info.dtype) }
                }
                checkpoint.releasePages(e.name)
            }
        }

        if singleFile {
            try out.write { staging in
                let writer = try SafetensorsWriter(url: staging, entries: entries, metadata: metadata, allowNonFinite: options.allowNonFinite)
                try stream { try writer.write($0, converting: $1, from: $2) }
                try writer.finish()
            }
            summary.files = [out.url.lastPathComponent]
            return summary
        }

        try out.write { staging in
            let writer = try CheckpointWriter(directory: staging, entries: entries, maxShardBytes: options.maxShardBytes, metadata: metadata,
                                              allowNonFinite: options.allowNonFinite)
            try stream { try writer.write($0, converting: $1, from: $2) }
            try writer.finish()
            summary.files = writer.shardFileNames + (writer.shardFileNames.count > 1 ? ["model.safetensors.index.json"] : [])
            // A folder or index input has a Hugging Face folder (a lone .safetensors file has none).
            if let dir = checkpoint.directory {
                let names = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter(isSideFile).sorted()
                for name in names {
                    var isSub: ObjCBool = false
                    guard fm.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isSub), !isSub.boolValue else { continue }
                    let data: Data
                    do {
                        data = try Data(contentsOf: dir.appendingPathComponent(name))
                    } catch {
                        throw CheckpointError.io(path: dir.appendingPathComponent(name).path, message: "cannot read: \(error.localizedDescription)")
                    }
                    var bytes = [UInt8](data)
                    if name == "config.json", let target = options.dtype, summary.converted > 0 {
                        bytes = try retypedConfig(bytes, to: target, path: dir.appendingPathComponent(name).path)
                    }
                    try writeFileAtomically(bytes, to: staging.appendingPathComponent(name))
                    summary.copiedFiles.append(name)
                }
            }
        }
        return summary
    }

    /// config.json with every `"torch_dtype"` / `"dtype"` whose value is a floating torch dtype
    /// name rewritten to `target` (so `from_pretrained(torch_dtype="auto")` loads the new dtype);
    /// everything else byte for byte. The input must parse as JSON and so must the result.
    static func retypedConfig(_ bytes: [UInt8], to target: DType, path: String) throws -> [UInt8] {
        do {
            _ = try StrictJSONParser.parse(bytes)
        } catch let e as JSONParseError {
            throw CheckpointError.invalidJSON(path: path, message: e.description)
        }
        let newName: String
        switch target {
        case .f32: newName = "float32"
        case .f16: newName = "float16"
        case .bf16: newName = "bfloat16"
        case .f64: newName = "float64"
        default: return bytes
        }
        let floats = ["float32", "float16", "bfloat16", "float64", "float", "half", "double"]
        var text = String(decoding: bytes, as: UTF8.self)
        for key in ["\"torch_dtype\"", "\"dtype\""] {
            var out = ""
            var rest = Substring(text)
            while let k = rest.range(of: key) {
                out += rest[..<k.upperBound]
                rest = rest[k.upperBound...]
                // `"key"` then optional spaces, ':', optional spaces, a string value.
                let afterSpaces = rest.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
                guard afterSpaces.first == ":" else { continue }
                let value = afterSpaces.dropFirst().drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
                guard value.first == "\"", let close = value.dropFirst().firstIndex(of: "\"") else { continue }
                let old = String(value[value.index(after: value.startIndex)..<close])
                guard floats.contains(old) || floats.contains(old.replacingOccurrences(of: "torch.", with: "")) else { continue }
                out += rest[..<value.startIndex] + "\"" + newName + "\""
                rest = value[value.index(after: close)...]
            }
            text = out + rest
        }
        let result = Array(text.utf8)
        do {
            _ = try StrictJSONParser.parse(result)
        } catch let e as JSONParseError {
            throw CheckpointError.invalidJSON(path: path, message: "after updating torch_dtype: \(e.description)")
        }
        return result
    }

}

import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// Everything besides the recipe that decides the bytes of a merge's output; a plan file fixes
/// it, so every part and the assembly merge exactly what the one-process merge would.
public struct PlanSettings: Sendable, Equatable {
    public var seed: UInt64 = 0
    public var vocabulary: VocabularyChoice?
    public var allowExtrapolation = false
    /// `--allow-crimes`: inputs whose config.json settings differ are merged (PlanOptions.allowConfigMismatch).
    public var allowConfigMismatch = false
    /// The output dtype given on the command line (`--dtype`), over the recipe's.
    public var outDType: DType?
    /// Absolute folder where relative model paths are tried after the working directory (the
    /// recipe's folder; nil for a command-line recipe), as `PlanOptions.searchDirectory`.
    public var searchDirectory: String?
    /// The working directory the plan was made in: model paths of the recipe that are relative
    /// are tried there first (`weightsmith merge --plan` runs from it when it exists), as in the
    /// one-process merge.
    public var workingDirectory: String?
    public var maxShardBytes: Int? = 5_000_000_000
    /// SHA-256 of every input data file (the model card's, and the check of an input whose
    /// modification time changed). Without it, an input with another modification time is stale.
    public var hashInputs = true
    public var allowNonFinite = false
    public init() {}

    /// The planner options these settings stand for (plan with them before `MergePlanFile.make`).
    public var planOptions: PlanOptions {
        var o = PlanOptions(vocabulary: vocabulary, seed: seed, searchDirectory: searchDirectory)
        o.allowExtrapolation = allowExtrapolation
        o.allowConfigMismatch = allowConfigMismatch
        return o
    }
}

/// Size, modification time (nanoseconds since 1970) and optionally SHA-256 of one input file.
public struct FileFingerprint: Sendable, Equatable {
    public let path: String
    public let size: Int
    public let modified: Int
    public let sha256: String?

    static func of(_ path: String, sha256: String?) throws -> FileFingerprint {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw MergePartsError.staleInput(file: path, reason: "cannot stat it: \(String(cString: strerror(errno)))")
        }
        return FileFingerprint(path: path, size: Int(st.st_size), modified: Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec),
                               sha256: sha256)
    }

    var json: JSONValue {
        .object([("path", .string(path)), ("size", .integer(size)), ("modified_ns", .integer(modified)),
                 ("sha256", sha256.map { .string($0) } ?? .null)])
    }

    /// Checks the file at `path` against this fingerprint: the size must match; a different
    /// modification time is accepted when the content's SHA-256 (cached by `InputFingerprints`)
    /// matches the recorded one (an input copied with a new time), and refused without one.
    func verify() throws {
        let now = try FileFingerprint.of(path, sha256: nil)
        guard now.size == size else { throw MergePartsError.staleInput(file: path, reason: "its size is \(now.size) bytes, the plan's \(size)") }
        if now.modified == modified { return }
        guard let sha256 else {
            throw MergePartsError.staleInput(file: path, reason: "it was modified after the plan (a different modification time), and the plan holds no SHA-256 to compare (it was made with --no-hash)")
        }
        let actual = InputFingerprints.digests([path])[path] ?? "unreadable"
        guard actual == sha256 else { throw MergePartsError.staleInput(file: path, reason: "its SHA-256 is \(actual), the plan's \(sha256)") }
    }
}

/// One output shard of a plan: its file name, exact size, and tensors in write order.
public struct PlannedShard: Sendable, Equatable {
    public let file: String
    public let bytes: Int
    public let tensors: [String]
}

/// A merge plan as a file (`merge RECIPE OUT --plan-only plan.json`): the recipe text and
/// settings, the output folder, every input file's fingerprint, and per output shard its jobs:
/// each output tensor with dtype, shape, resolved parameters, and its inputs with their file and
/// byte range. `plan_id` is the SHA-256 of that content (the JSON text without the `plan_id`
/// member), so an edited plan is refused.
///
/// A part does not trust the job list blindly: it parses the recipe again with the recorded
/// settings, plans it, and requires the result to serialise to the same content (checked with
/// the recorded fingerprints, after checking each input against them), so a plan that no longer
/// describes the inputs, or a weightsmith that would plan differently, is an error instead of a
/// different merge. The job list is for readers and tools; the checks make it binding.
public struct MergePlanFile: Sendable {
    public static let format = "weightsmith-merge-plan"
    public static let version = 1

    public let id: String
    /// The plan file's path (for messages).
    public let path: String
    public let recipeText: String
    public let recipeFile: String
    public let settings: PlanSettings
    /// Absolute path of the output folder the plan was made for.
    public let outputPath: String
    /// The model card's title: the output folder's name.
    public let outputName: String
    public let shards: [PlannedShard]
    /// Per input: its data files (the model card's rows, in order) and side files (config,
    /// tokenizer, other source files).
    let dataFiles: [[FileFingerprint]]
    let sideFiles: [[FileFingerprint]]
    let content: JSONValue

    /// The plan file of a checked `plan`, fingerprinting every input file (SHA-256 of data files
    /// only with `settings.hashInputs`, through the same cache as the one-process model card;
    /// side files always, they are small).
    public static func make(_ plan: MergePlan, recipeText: String, recipeFile: String, settings: PlanSettings,
                            output: URL, path: String) throws -> MergePlanFile {
        let plan = try plan.checked()
        let data = plan.inputs.map { MergeExecutor.files(of: $0.checkpoint) }
        let side = plan.inputs.enumerated().map { i, _ in sideFilePaths(plan, input: i, excluding: data[i]) }
        let digests = settings.hashInputs ? InputFingerprints.digests(data.flatMap { $0 }) : [:]
        let sideDigests = InputFingerprints.digests(side.flatMap { $0 })
        func fingerprints(_ paths: [String], _ d: [String: String]) throws -> [FileFingerprint] {
            try paths.map { p in
                let h = d[p]
                if h == "unreadable" { throw MergePartsError.staleInput(file: p, reason: "it cannot be read to compute its SHA-256") }
                return try FileFingerprint.of(absolute(p), sha256: h)
            }
        }
        let dataFP = try data.map { try fingerprints($0, digests) }
        let sideFP = try side.map { try fingerprints($0, sideDigests) }
        let out = URL(fileURLWithPath: output.path).standardizedFileURL
        let content = try makeContent(plan, recipeText: recipeText, recipeFile: recipeFile, settings: settings,
                                      outputPath: out.path, outputName: output.lastPathComponent, dataFiles: dataFP, sideFiles: sideFP)
        return try MergePlanFile(content: content, path: path, id: hash(content))
    }

    /// The file's text: `plan_id` first, then the content.
    public var text: String {
        guard case let .object(members) = content else { return "" }
        return JSONText.string(.object([("plan_id", .string(id))] + members)) + "\n"
    }

    /// Reads a plan file and checks that its content hashes to its `plan_id`.
    public static func load(_ url: URL) throws -> MergePlanFile {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw MergePartsError.badPlanFile(path: url.path, reason: "cannot read the plan file")
        }
        let value: JSONValue
        do { value = try StrictJSONParser.parse(Array(data)) } catch {
            throw MergePartsError.badPlanFile(path: url.path, reason: "not valid JSON: \(error)")
        }
        guard case let .object(members) = value, case let .string(id)? = value["plan_id"] else {
            throw MergePartsError.badPlanFile(path: url.path, reason: "not a weightsmith merge plan (no plan_id); `merge RECIPE OUT --plan-only PLAN.json` writes one")
        }
        guard value["format"] == .string(format) else {
            throw MergePartsError.badPlanFile(path: url.path, reason: "format is \(value["format"].map { JSONText.string($0) } ?? "missing"), expected \"\(format)\"")
        }
        guard value["version"] == .integer(version) else {
            throw MergePartsError.badPlanFile(path: url.path, reason: "plan version \(value["version"].map { JSONText.string($0) } ?? "missing"); this weightsmith reads version \(version)")
        }
        let content = JSONValue.object(members.filter { $0.key != "plan_id" })
        let h = hash(content)
        guard h == id else { throw MergePartsError.planEdited(path: url.path, planID: id, contentHash: h) }
        return try MergePlanFile(content: content, path: url.path, id: id)
    }

    /// Writes the plan file atomically.
    public func write(to url: URL) throws {
        try writeFileAtomically(Array(text.utf8), to: url)
    }

    /// Checks every input file against its fingerprint, plans the recipe again with the recorded
    /// settings and returns that plan, after checking that it is the plan of this file.
    public func replan() throws -> MergePlan {
        for f in (dataFiles + sideFiles).flatMap({ $0 }) { try f.verify() }
        var recipe = try RecipeParser.parse(recipeText, file: recipeFile)
        if let d = settings.outDType { recipe.outDType = d }
        let plan = try MergePlanner.plan(recipe, options: settings.planOptions).checked()
        let again = try Self.makeContent(plan, recipeText: recipeText, recipeFile: recipeFile, settings: settings, outputPath: outputPath,
                                         outputName: outputName, dataFiles: dataFiles, sideFiles: sideFiles)
        guard again != content else { return plan }
        var section = "plan"
        if case let .object(a) = again, case let .object(b) = content {
            section = "\"" + (zip(a, b).first { $0.0.key != $0.1.key || $0.0.value != $0.1.value }?.0.key ?? "members") + "\" section"
        }
        // Paths as resolved now: an input found at another path than the plan's is refused too.
        throw MergePartsError.planChanged(path: path, section: section)
    }

    /// Data-file SHA-256 by the paths the checkpoints of `plan` (re-planned) report, for the card.
    func cardHashes(_ plan: MergePlan) -> [String: String] {
        guard settings.hashInputs else { return [:] }
        var out: [String: String] = [:]
        for (i, inp) in plan.inputs.enumerated() where i < dataFiles.count {
            for (f, fp) in zip(MergeExecutor.files(of: inp.checkpoint), dataFiles[i]) { out[f] = fp.sha256 }
        }
        return out
    }

    static func hash(_ content: JSONValue) -> String {
        var sha = SHA256()
        sha.update(Array(JSONText.string(content).utf8))
        return SHA256.hex(sha.finalize())
    }

    static func absolute(_ p: String) -> String {
        URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// config.json and tokenizer files beside an input, and its other source files.
    static func sideFilePaths(_ plan: MergePlan, input i: Int, excluding data: [String]) -> [String] {
        let c = plan.inputs[i].checkpoint
        var paths: [String] = []
        let dataSet = Set(data.map(absolute))
        for u in c.sourceURLs {
            var d: ObjCBool = false
            if FileManager.default.fileExists(atPath: u.path, isDirectory: &d), !d.boolValue, !dataSet.contains(absolute(u.path)) { paths.append(u.path) }
        }
        if let dir = c.directory {
            for f in ["config.json"] + MergeExecutor.tokenizerFiles {
                let p = dir.appendingPathComponent(f).path
                if FileManager.default.fileExists(atPath: p), !paths.contains(p) { paths.append(p) }
            }
        }
        return paths
    }

    // MARK: - Content

    static func makeContent(_ plan: MergePlan, recipeText: String, recipeFile: String, settings: PlanSettings, outputPath: String,
                            outputName: String, dataFiles: [[FileFingerprint]], sideFiles: [[FileFingerprint]]) throws -> JSONValue {
        let layout = try MergeParts.layout(plan, settings: settings, directory: URL(fileURLWithPath: outputPath))
        let jobs = Dictionary(uniqueKeysWithValues: plan.jobs.map { ($0.output, $0) })
        func input(_ inp: JobInput, role: String) -> JSONValue {
            let c = plan.inputs[inp.model].checkpoint
            var m: [(key: String, value: JSONValue)] = [("input", .integer(inp.model)), ("role", .string(role)), ("tensor", .string(inp.tensor))]
            if inp.kind == .delta { m.append(("kind", .string("task_vector"))) }
            if let p = inp.padFrom { m.append(("pad_from", .integer(p))) }
            if let info = c.info(inp.tensor) { m.append(("dtype", .string(info.dtype.rawValue))) }
            if !c.isVirtual, let shard = c.shard(of: inp.tensor), let info = shard.info(inp.tensor) {
                m.append(("file", .string(absolute(shard.url.path))))
                m.append(("byte_range", .array([.integer(shard.dataStart + info.dataOffsets.lowerBound),
                                               .integer(shard.dataStart + info.dataOffsets.upperBound)])))
            } else {
                m.append(("source", .string(c.fileLabel(of: inp.tensor) ?? plan.inputs[inp.model].label)))
            }
            return .object(m)
        }
        func parameters(_ d: [String: ParameterValue]) -> JSONValue {
            .object(d.keys.sorted().map { k in
                switch d[k]! {
                case let .number(x): return (k, .number(x))
                case let .bool(b): return (k, .bool(b))
                }
            })
        }
        let shards: [JSONValue] = layout.shardFileNames.enumerated().map { s, file in
            let tensors: [JSONValue] = layout.entries(ofShard: s).map { e in
                let j = jobs[e.name]!
                var m: [(key: String, value: JSONValue)] = [
                    ("name", .string(j.output)), ("dtype", .string(j.outDType.rawValue)),
                    ("shape", .array(j.shape.dims.map { .integer($0) })), ("t", .number(j.t)),
                    ("inputs", .array((j.base.map { [input($0, role: "base")] } ?? []) + j.models.map { input($0, role: "model") })),
                    ("parameters", .object([("global", parameters(j.parameters.global)),
                                            ("per_model", .array(j.parameters.perModel.map(parameters)))]))]
                if let v = j.vocabularyRows { m.append(("vocabulary", v.summary)) }
                return .object(m)
            }
            return .object([("file", .string(file)), ("bytes", .integer((try? layout.fileSize(ofShard: s)) ?? 0)), ("tensors", .array(tensors))])
        }
        let inputs: [JSONValue] = plan.inputs.enumerated().map { i, inp in
            .object([("label", .string(inp.label)), ("path", .string(absolute(inp.path))),
                     ("data_files", .array(dataFiles[i].map(\.json))), ("side_files", .array(sideFiles[i].map(\.json)))])
        }
        var s: [(key: String, value: JSONValue)] = [("seed", .string(String(settings.seed)))]
        s.append(("vocabulary", settings.vocabulary.map { .string($0.rawValue) } ?? .null))
        s.append(("allow_extrapolation", .bool(settings.allowExtrapolation)))
        s.append(("allow_config_mismatch", .bool(settings.allowConfigMismatch)))
        s.append(("out_dtype", settings.outDType.map { .string($0.recipeName) } ?? .null))
        s.append(("search_directory", settings.searchDirectory.map { .string($0) } ?? .null))
        s.append(("working_directory", settings.workingDirectory.map { .string($0) } ?? .null))
        s.append(("max_shard_bytes", settings.maxShardBytes.map { .integer($0) } ?? .null))
        s.append(("hash_inputs", .bool(settings.hashInputs)))
        s.append(("allow_nonfinite", .bool(settings.allowNonFinite)))
        return .object([
            ("format", .string(format)), ("version", .integer(version)),
            ("method", .string(plan.method.name)),
            ("recipe", .object([("file", .string(recipeFile)), ("text", .string(recipeText))])),
            ("settings", .object(s)),
            ("output", .object([("path", .string(outputPath)), ("name", .string(outputName)),
                                ("tensors", .integer(plan.jobs.count)), ("tensor_bytes", .integer(plan.outputBytes))])),
            ("config_source", .integer(plan.configSource)), ("tokenizer_source", .integer(plan.tokenizerSource)),
            ("notes", .array(plan.notes.map { .string($0) })),
            ("inputs", .array(inputs)),
            ("shards", .array(shards)),
        ])
    }

    // MARK: - Decoding

    private init(content: JSONValue, path: String, id: String) throws {
        self.content = content
        self.path = path
        self.id = id
        func fail(_ key: String, _ what: String) -> MergePartsError { .badPlanFile(path: path, reason: "\(key): expected \(what)") }
        func string(_ v: JSONValue?, _ key: String) throws -> String {
            guard case let .string(s)? = v else { throw fail(key, "a string") }
            return s
        }
        func int(_ v: JSONValue?, _ key: String) throws -> Int {
            guard case let .integer(i)? = v else { throw fail(key, "an integer") }
            return i
        }
        func bool(_ v: JSONValue?, _ key: String) throws -> Bool {
            guard case let .bool(b)? = v else { throw fail(key, "true or false") }
            return b
        }
        func array(_ v: JSONValue?, _ key: String) throws -> [JSONValue] {
            guard case let .array(a)? = v else { throw fail(key, "a list") }
            return a
        }
        let recipe = content["recipe"]
        recipeText = try string(recipe?["text"], "recipe.text")
        recipeFile = try string(recipe?["file"], "recipe.file")
        let s = content["settings"]
        var st = PlanSettings()
        guard let seed = UInt64(try string(s?["seed"], "settings.seed")) else { throw fail("settings.seed", "a whole number as a string") }
        st.seed = seed
        if let v = s?["vocabulary"], v != .null {
            guard let c = VocabularyChoice(rawValue: try string(v, "settings.vocabulary")) else { throw fail("settings.vocabulary", "truncate or base") }
            st.vocabulary = c
        }
        st.allowExtrapolation = try bool(s?["allow_extrapolation"], "settings.allow_extrapolation")
        st.allowConfigMismatch = try bool(s?["allow_config_mismatch"], "settings.allow_config_mismatch")
        if let v = s?["out_dtype"], v != .null {
            guard let d = DType(userSpelling: try string(v, "settings.out_dtype")) else { throw fail("settings.out_dtype", "a dtype") }
            st.outDType = d
        }
        if let v = s?["search_directory"], v != .null { st.searchDirectory = try string(v, "settings.search_directory") }
        if let v = s?["working_directory"], v != .null { st.workingDirectory = try string(v, "settings.working_directory") }
        if s?["max_shard_bytes"] == .null { st.maxShardBytes = nil } else { st.maxShardBytes = try int(s?["max_shard_bytes"], "settings.max_shard_bytes") }
        st.hashInputs = try bool(s?["hash_inputs"], "settings.hash_inputs")
        st.allowNonFinite = try bool(s?["allow_nonfinite"], "settings.allow_nonfinite")
        settings = st
        outputPath = try string(content["output"]?["path"], "output.path")
        outputName = try string(content["output"]?["name"], "output.name")
        shards = try array(content["shards"], "shards").enumerated().map { k, v in
            PlannedShard(file: try string(v["file"], "shards[\(k)].file"), bytes: try int(v["bytes"], "shards[\(k)].bytes"),
                         tensors: try array(v["tensors"], "shards[\(k)].tensors").map { try string($0["name"], "shards[\(k)].tensors[].name") })
        }
        func fingerprints(_ v: JSONValue?, _ key: String) throws -> [FileFingerprint] {
            try array(v, key).map { f in
                var sha: String?
                if f["sha256"] != .null { sha = try string(f["sha256"], "\(key)[].sha256") }
                return FileFingerprint(path: try string(f["path"], "\(key)[].path"), size: try int(f["size"], "\(key)[].size"),
                                       modified: try int(f["modified_ns"], "\(key)[].modified_ns"), sha256: sha)
            }
        }
        let inputs = try array(content["inputs"], "inputs")
        dataFiles = try inputs.enumerated().map { try fingerprints($1["data_files"], "inputs[\($0)].data_files") }
        sideFiles = try inputs.enumerated().map { try fingerprints($1["side_files"], "inputs[\($0)].side_files") }
    }
}

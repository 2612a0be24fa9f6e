import ArgumentParser
import Checkpoints
import Foundation
import Merging
import Tensors

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge checkpoints with a mergekit-style recipe or a short command line.",
        discussion: """
        Recipe:      weightsmith merge RECIPE.yml OUT_DIR [--dry-run]
                     (several documents separated by --- with name: as in mergekit-multi: run in order, a name usable as a model)
        Short form:  weightsmith merge --method ties --base BASE A B C --weight 1 --density 0.5 -o OUT_DIR
                     (--weight/--density: one value for all models or one per model; --set NAME=VALUE for any other parameter;
                     --method linear without --weight is the uniform soup, every model 1/n)
        On many machines (OUT_DIR on shared storage; parts numbered from 1):
          weightsmith merge RECIPE.yml OUT_DIR --plan-only plan.json
          weightsmith merge --plan plan.json --part I/N   (each I, any machine)
          weightsmith merge --plan plan.json --assemble   (once, after the parts)
          The assembled folder is byte for byte the one-process merge's;
          scripts/slurm-merge.sbatch, scripts/k8s-merge-job.yaml run the parts.
        Methods: \(MergeMethodRegistry.names.joined(separator: ", "))
        """
    )

    @Argument(help: "RECIPE.yml OUT_DIR, or with --method the models to merge.")
    var arguments: [String] = []

    @Option(name: [.short, .customLong("output")], help: "Output folder (instead of the second argument).")
    var output: String?

    @Option(help: "Merge method (short form without a recipe).")
    var method: String?

    @Option(help: "Base model (short form).")
    var base: String?

    @Option(help: "Per-model weight; repeat once per model or give one for all (short form).")
    var weight: [Double] = []

    @Option(help: "Per-model density; repeat once per model or give one for all (short form).")
    var density: [Double] = []

    @Option(name: .customLong("set"), help: "Parameter NAME=VALUE (number or true/false), e.g. --set lambda=0.8 --set t=0.5.")
    var settings: [String] = []

    @Option(name: [.customLong("dtype"), .customLong("out-dtype")], help: "Output dtype: f32, bf16, f16 (or float32, bfloat16, float16; default: the recipe's, else the base's). --out-dtype is the same option.")
    var outDtype: String?

    @Flag(help: "Print the plan and the estimated peak memory, then stop.")
    var dryRun = false

    @Option(help: "Seed for randomised methods (dare_*, della*).")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Refuse to start when the estimated peak memory exceeds this (e.g. 2GB, 512MB); none: no limit. Default: 80% of the memory available at the start, over which the merge goes on with mapped pages dropped block by block instead of refusing.", valueName: "size|none|auto"))
    var memoryBudget: String?

    /// `--memory-budget` resolved (the automatic default read from /proc/meminfo and the cgroup).
    func budget() throws -> MemoryBudget { try MemoryBudget.resolve(memoryBudget, parseSize: parseSize) }

    @Option(help: "Vocabulary size differences: truncate (common rows) or base (the base's rows).")
    var vocab: String?

    @Flag(help: "Pre-flight: also scan every input for NaN/Inf.")
    var stats = false

    @Option(help: "Maximum shard size (default 5GB).")
    var shardSize: String = "5GB"

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Skip the SHA-256 of the inputs in the model card.")
    var noHash = false

    @Flag(help: "Replace OUT_DIR if it exists.")
    var force = false

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Print the result as JSON (output, tensors, bytes, seconds, files, notes) instead of the \"wrote\" line.")
    var json = false

    @Flag(help: "Accept SLERP's t outside [0, 1] (extrapolation beyond the models).")
    var allowExtrapolation = false

    @Flag(name: .customLong("allow-crimes"), help: "Merge inputs whose config.json settings (architecture, hidden size, heads, activation, RoPE, norm epsilon) differ; the output takes the base's config (mergekit's flag).")
    var allowCrimes = false

    @Option(help: "Multi-document recipes: keep the named intermediate merges in DIR/NAME (reused when rerun with the same recipe); default: a hidden folder beside OUT_DIR, removed at the end.")
    var intermediateDir: String?

    @OptionGroup var nonFinite: NonFiniteOption

    @Option(name: .customLong("plan-only"), help: ArgumentHelp("Write the plan as JSON to this file and stop (for --plan).", valueName: "plan.json"))
    var planOnly: String?

    @Option(name: .customLong("plan"), help: ArgumentHelp("Run from a plan written by --plan-only: with --part I/N or --assemble (OUT_DIR: the plan's, or the one argument).", valueName: "plan.json"))
    var planFile: String?

    @Option(help: ArgumentHelp("With --plan: run part I of N (numbered from 1), writing only its shards.", valueName: "I/N"))
    var part: String?

    @Flag(help: "With --plan: check every part's receipt and shards, then write the index, config, tokenizer and model card.")
    var assemble = false

    func run() throws {
        try ThreadsOption.apply(threads)
        if let planFile { return try runFromPlan(planFile) }
        if part != nil || assemble { throw ValidationError("--part and --assemble need --plan plan.json") }
        if method == nil, let file = arguments.first, arguments.count <= 2 {
            let multi = try MultiRecipe.parse(file: file)
            if multi.isMulti {
                guard planOnly == nil else {
                    throw ValidationError("--plan-only works on a single-document recipe: split \(file) and plan each merge on its own")
                }
                try runMulti(multi, outPath: arguments.count == 2 ? arguments[1] : output,
                             options: try planOptions(searchDirectory: URL(fileURLWithPath: file).deletingLastPathComponent().path))
                return
            }
        }
        let (recipe, outPath, searchDir) = try makeRecipe()
        let options = try planOptions(searchDirectory: searchDir)
        var plan = try MergePlanner.plan(recipe, options: options)
        if stats { plan.problems += ValueScan.problems(try ValueScan.scan(plan)) }
        if dryRun {
            print(plan.describe(), terminator: "")
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            let b = try budget()
            print(b.line)
            if let bytes = b.bytes, try plan.checked().estimatedPeakBytes > bytes {
                print(b.isAutomatic ? "note: the largest job needs more than the budget: the merge would drop mapped input pages block by block"
                                    : "the largest job needs more than --memory-budget: the merge would refuse to start")
            }
            if let outPath {
                print(try MergeExecutor.checkOutput(plan, to: URL(fileURLWithPath: outPath), options: ExecutionOptions(overwrite: force)))
            }
            return
        }
        guard let outPath else { throw ValidationError("missing the output folder (OUT_DIR or -o)") }
        if let planOnly { return try writePlan(plan, recipe: recipe, options: options, outPath: outPath, searchDir: searchDir, to: planOnly) }
        for n in plan.notes where !quiet { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
        let b = try budget()
        var exec = ExecutionOptions(memoryBudget: b.bytes, maxShardBytes: try parseSize(shardSize),
                                    hashInputs: !noHash, progress: !quiet, overwrite: force)
        exec.memoryBudgetIsAutomatic = b.isAutomatic
        exec.allowNonFinite = nonFinite.allowNonFinite
        let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: outPath), options: exec)
        if json { return try WrittenFolderJSON(report, notes: plan.notes).printed() }
        print("wrote \(report.outputDirectory.path): \(report.files.joined(separator: ", "))")
    }

    /// `--plan-only`: the plan file of a checked plan (settings that change the output's bytes fixed in it).
    func writePlan(_ plan: MergePlan, recipe: Recipe, options: PlanOptions, outPath: String, searchDir: String?, to planPath: String) throws {
        let plan = try plan.checked()
        var planSettings = PlanSettings()
        planSettings.seed = seed
        planSettings.vocabulary = options.vocabulary
        planSettings.allowExtrapolation = allowExtrapolation
        planSettings.allowConfigMismatch = allowCrimes
        // A recipe file's text is kept as written: --dtype is recorded beside it (the short form has it in its recipe).
        if method == nil { planSettings.outDType = try outDtype.map(dtype) }
        planSettings.searchDirectory = searchDir
        planSettings.workingDirectory = FileManager.default.currentDirectoryPath
        planSettings.maxShardBytes = try parseSize(shardSize)
        planSettings.hashInputs = !noHash
        planSettings.allowNonFinite = nonFinite.allowNonFinite
        let inputs = plan.inputs.flatMap { $0.checkpoint.sourceURLs }
        let out = URL(fileURLWithPath: outPath)
        let planURL = URL(fileURLWithPath: planPath)
        do {
            try OutputFolder.checkNotOverlapping(out, inputs: inputs)
            try OutputFolder.checkNotOverlapping(planURL, inputs: inputs)
        } catch let e as OutputError { throw MergeError.other(e.description) }
        if FileManager.default.fileExists(atPath: planURL.path) {
            let existing = FileManager.default.contents(atPath: planURL.path).flatMap { try? StrictJSONParser.parse(Array($0)) }
            let isPlan = existing?["format"] == .string(MergePlanFile.format)
            guard force, isPlan else {
                throw MergeError.other("\(planPath): already exists; " + (isPlan ? "use --force to replace this plan file" : "it is not a weightsmith plan, refusing to replace it"))
            }
        }
        // OUT: new, empty, or a partial output of this same plan (checked again once its id is known).
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        let partialOf = MergeParts.partialPlanID(out)
        let notUsable = "\(outPath): exists and is not empty (nor a partial output of this plan); the parts need a new or empty folder"
        if !contents.isEmpty && partialOf == nil { throw MergeError.other(notUsable) }
        let file = try MergePlanFile.make(plan, recipeText: recipe.yaml(), recipeFile: method == nil ? arguments[0] : "<command line>",
                                          settings: planSettings, output: out, path: planPath)
        if !contents.isEmpty && partialOf != file.id { throw MergeError.other(notUsable) }
        try file.write(to: planURL)
        let bytes = file.shards.reduce(0) { $0 + $1.bytes }
        print("wrote \(planPath): plan \(file.id), \(plan.jobs.count) tensors in \(file.shards.count) shard\(file.shards.count == 1 ? "" : "s") (\(formatBytes(bytes))) for \(outPath)")
        print("next: weightsmith merge --plan \(planPath) --part I/N   (each I in 1...N, any N; on machines sharing \(outPath))")
        print("then: weightsmith merge --plan \(planPath) --assemble")
    }

    /// `--plan plan.json --part I/N` or `--assemble`.
    func runFromPlan(_ path: String) throws {
        var fixed: [String] = []
        if method != nil || base != nil || !weight.isEmpty || !density.isEmpty || !settings.isEmpty { fixed.append("the recipe (--method, --base, --weight, --density, --set)") }
        if outDtype != nil { fixed.append("--dtype") }
        if vocab != nil { fixed.append("--vocab") }
        if seed != 0 { fixed.append("--seed") }
        if shardSize != "5GB" { fixed.append("--shard-size") }
        if noHash { fixed.append("--no-hash") }
        if allowExtrapolation { fixed.append("--allow-extrapolation") }
        if allowCrimes { fixed.append("--allow-crimes") }
        if nonFinite.allowNonFinite { fixed.append("--allow-nonfinite") }
        if dryRun || stats || force || planOnly != nil { fixed.append("--dry-run, --stats, --force and --plan-only") }
        if !fixed.isEmpty { throw ValidationError("with --plan, the plan fixes \(fixed.joined(separator: ", ")); give them to --plan-only") }
        guard arguments.count <= 1, output == nil || arguments.isEmpty else {
            throw ValidationError("with --plan, give at most the output folder (by default the plan's)")
        }
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let out = (arguments.first ?? output).map { URL(fileURLWithPath: $0, relativeTo: cwd).standardizedFileURL.absoluteURL }
        let file = try MergePlanFile.load(URL(fileURLWithPath: path, relativeTo: cwd).standardizedFileURL.absoluteURL)
        // Relative model paths of the recipe resolve as they did where the plan was made (every
        // input is then checked against the plan's absolute paths and fingerprints).
        if let wd = file.settings.workingDirectory, FileManager.default.fileExists(atPath: wd) {
            _ = FileManager.default.changeCurrentDirectoryPath(wd)
        }
        switch (part, assemble) {
        case let (p?, false):
            let report = try MergeParts.run(file, part: try PartNumber(parsing: p), output: out,
                                            options: try partOptions())
            let what = report.shards.isEmpty ? "no shards (more parts than shards)" : report.shards.joined(separator: ", ")
            print(report.alreadyComplete
                ? "part \(report.part): already complete in \(report.output.path) (\(what); receipt and shards match)"
                : "part \(report.part): wrote \(what) (\(formatBytes(report.bytes))) to \(report.output.path)")
        case (nil, true):
            let report = try MergeParts.assemble(file, output: out)
            print("wrote \(report.outputDirectory.path): \(report.files.joined(separator: ", "))")
        default:
            throw ValidationError("with --plan, give either --part I/N or --assemble")
        }
    }

    /// The planner options the command line sets (one place for recipes, multi-document recipes and the short form).
    func planOptions(searchDirectory: String?) throws -> PlanOptions {
        var options = PlanOptions(seed: seed, searchDirectory: searchDirectory)
        options.threads = threads ?? ParallelLoops.machineThreads
        options.allowExtrapolation = allowExtrapolation
        options.allowConfigMismatch = allowCrimes
        if let vocab {
            guard let v = VocabularyChoice(rawValue: vocab) else { throw ValidationError("--vocab must be truncate or base, got \(vocab)") }
            options.vocabulary = v
        }
        return options
    }

    /// The recipe from a file, or from the short form.
    func makeRecipe() throws -> (Recipe, String?, String?) {
        if let method {
            guard !arguments.isEmpty else { throw ValidationError("--method needs the models to merge as arguments") }
            let n = arguments.count
            for (name, list) in [("weight", weight), ("density", density)] where !(list.isEmpty || list.count == 1 || list.count == n) {
                throw ValidationError("--\(name) given \(list.count) times; give it once (all models) or \(n) times (one per model)")
            }
            var params = ParameterTable()
            for s in settings {
                let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--set expects NAME=VALUE, got \(s)") }
                switch parts[1].lowercased() {
                case "true": params.settings[parts[0]] = .value(.bool(true))
                case "false": params.settings[parts[0]] = .value(.bool(false))
                default:
                    guard let x = Double(parts[1]) else { throw ValidationError("--set \(parts[0]): \(parts[1]) is not a number or true/false") }
                    params.settings[parts[0]] = .value(.number(x))
                }
            }
            let models = arguments.enumerated().map { i, path -> RecipeSource in
                var t = ParameterTable()
                if !weight.isEmpty { t.settings["weight"] = .value(.number(weight.count == 1 ? weight[0] : weight[i])) }
                // `linear` without --weight is the uniform soup: every model 1/n (normalised or not).
                else if method == "linear" { t.settings["weight"] = .value(.number(1 / Double(n))) }
                if !density.isEmpty { t.settings["density"] = .value(.number(density.count == 1 ? density[0] : density[i])) }
                return RecipeSource(model: path, parameters: t)
            }
            var recipe = Recipe(mergeMethod: method, baseModel: base, models: models, parameters: params)
            if let outDtype { recipe.outDType = try dtype(outDtype) }
            _ = try MergeMethodRegistry.method(named: method)
            try RecipeParser.validateParameterNames(recipe)
            return (recipe, output, nil)
        }
        guard arguments.count >= 1, arguments.count <= 2 else {
            throw ValidationError("expected RECIPE.yml OUT_DIR (or --method ... for the short form)")
        }
        var recipe = try RecipeParser.parse(file: arguments[0])
        if let outDtype { recipe.outDType = try dtype(outDtype) }
        let out = arguments.count == 2 ? arguments[1] : output
        return (recipe, out, URL(fileURLWithPath: arguments[0]).deletingLastPathComponent().path)
    }

    func dtype(_ s: String) throws -> Tensors.DType {
        guard let d = Tensors.DType(userSpelling: s), [.f32, .bf16, .f16, .f64].contains(d) else {
            throw ValidationError("--out-dtype must be float32, bfloat16, float16 or float64, got \(s)")
        }
        return d
    }
}

/// Parses a size such as `5GB`, `512MB`, `2GiB`, `1TB` with the one parser every command uses
/// (`ByteSize.parse`: powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` for 1024).
func parseSize(_ s: String) throws -> Int {
    do { return try ByteSize.parse(s) } catch let e as ByteSize.ParseError { throw ValidationError(e.description) }
}

extension MergeCommand {
    func partOptions() throws -> PartOptions {
        let b = try budget()
        var o = PartOptions(memoryBudget: b.bytes, progress: !quiet)
        o.memoryBudgetIsAutomatic = b.isAutomatic
        o.threads = threads ?? ParallelLoops.machineThreads
        return o
    }
}

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

    @Option(help: "Refuse to start when the estimated peak memory exceeds this (e.g. 2GB, 512MB).")
    var memoryBudget: String?

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

    @Flag(help: "Accept SLERP's t outside [0, 1] (extrapolation beyond the models).")
    var allowExtrapolation = false

    @Flag(name: .customLong("allow-crimes"), help: "Merge inputs whose config.json settings (architecture, hidden size, heads, activation, RoPE, norm epsilon) differ; the output takes the base's config (mergekit's flag).")
    var allowCrimes = false

    @Option(help: "Multi-document recipes: keep the named intermediate merges in DIR/NAME (reused when rerun with the same recipe); default: a hidden folder beside OUT_DIR, removed at the end.")
    var intermediateDir: String?

    @OptionGroup var nonFinite: NonFiniteOption

    func run() throws {
        if let threads { ParallelLoops.threadCount = max(1, threads) }
        if method == nil, let file = arguments.first, arguments.count <= 2 {
            let multi = try MultiRecipe.parse(file: file)
            if multi.isMulti {
                var options = PlanOptions(seed: seed, searchDirectory: URL(fileURLWithPath: file).deletingLastPathComponent().path)
                options.allowExtrapolation = allowExtrapolation
                options.allowConfigMismatch = allowCrimes
                if let vocab {
                    guard let v = VocabularyChoice(rawValue: vocab) else { throw ValidationError("--vocab must be truncate or base, got \(vocab)") }
                    options.vocabulary = v
                }
                try runMulti(multi, outPath: arguments.count == 2 ? arguments[1] : output, options: options)
                return
            }
        }
        let (recipe, outPath, searchDir) = try makeRecipe()
        var options = PlanOptions(seed: seed, searchDirectory: searchDir)
        options.allowExtrapolation = allowExtrapolation
        options.allowConfigMismatch = allowCrimes
        if let vocab {
            guard let v = VocabularyChoice(rawValue: vocab) else { throw ValidationError("--vocab must be truncate or base, got \(vocab)") }
            options.vocabulary = v
        }
        var plan = try MergePlanner.plan(recipe, options: options)
        if stats { plan.problems += ValueScan.problems(try ValueScan.scan(plan)) }
        if dryRun {
            print(plan.describe(), terminator: "")
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            return
        }
        guard let outPath else { throw ValidationError("missing the output folder (OUT_DIR or -o)") }
        for n in plan.notes where !quiet { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
        var exec = ExecutionOptions(memoryBudget: try memoryBudget.map(parseSize), maxShardBytes: try parseSize(shardSize),
                                    hashInputs: !noHash, progress: !quiet, overwrite: force)
        exec.allowNonFinite = nonFinite.allowNonFinite
        let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: outPath), options: exec)
        print("wrote \(report.outputDirectory.path): \(report.files.joined(separator: ", "))")
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

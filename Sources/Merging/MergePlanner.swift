import Checkpoints
import Foundation
import Tensors

/// How to merge vocabulary matrices whose row counts differ between inputs.
public enum VocabularyChoice: String, Sendable, CaseIterable {
    /// Keep the first `min(rows)` rows of every input.
    case truncate
    /// Keep the base model's rows; a model with fewer rows contributes the base's rows there
    /// (no change), a model with more rows is cut to the base's.
    case base
}

public struct PlanOptions: Sendable {
    public var vocabulary: VocabularyChoice?
    public var seed: UInt64 = 0
    /// Extra folder to try relative model paths in (the recipe's folder).
    public var searchDirectory: String?
    /// Accept task vectors and sparse deltas given alone (compose); otherwise they are refused.
    public var allowDeltas = false
    /// Accept values outside a parameter's usual range where extrapolating is meaningful
    /// (SLERP's t outside [0, 1]).
    public var allowExtrapolation = false
    /// Merge inputs whose config.json architecture settings differ (mergekit's `--allow-crimes`).
    public var allowConfigMismatch = false
    public init(vocabulary: VocabularyChoice? = nil, seed: UInt64 = 0, searchDirectory: String? = nil) {
        self.vocabulary = vocabulary
        self.seed = seed
        self.searchDirectory = searchDirectory
    }
}

/// Turns a recipe into a `MergePlan` (one job per output tensor) and collects every problem
/// the inputs have (pre-flight check) instead of stopping at the first.
public enum MergePlanner {
    struct Slice {
        var sources: [(input: Int, params: ParameterTable, range: Range<Int>)]
        var params: ParameterTable
        var base: Int?
    }

    /// - Parameter method: overrides the registry lookup of `recipe.mergeMethod` (task-vector extraction).
    public static func plan(_ recipe: Recipe, method override: (any MergeMethod)? = nil, options: PlanOptions = PlanOptions()) throws -> MergePlan {
        let method = try override ?? MergeMethodRegistry.method(named: recipe.mergeMethod)
        var problems: [String] = []
        var vocabularyMismatches: [String] = []
        var notes: [String] = []

        // 1. Open every input once.
        var inputs: [PlannedInput] = []
        var indexOf: [String: Int] = [:]
        for path in recipe.modelPaths {
            let resolved = resolve(path, options.searchDirectory)
            do {
                let c = try ModelReference.open(path, allowDeltas: options.allowDeltas, searchDirectory: options.searchDirectory)
                indexOf[path] = inputs.count
                inputs.append(PlannedInput(label: path, path: resolved, checkpoint: c))
            } catch {
                problems.append("cannot open model \"\(path)\": \(error)")
            }
        }
        guard problems.isEmpty else { throw MergeError.preflight(problems) }
        let baseIndex = recipe.baseModel.flatMap { indexOf[$0] }

        // 2. Normalise to slices.
        var slices: [Slice] = []
        if let models = recipe.models {
            let ref = baseIndex ?? indexOf[models[0].model]!
            let layers = layerCount(inputs[ref].checkpoint)
            var sources = models.map { (input: indexOf[$0.model]!, params: $0.parameters, range: 0..<layers) }
            for s in sources where layerCount(inputs[s.input].checkpoint) != layers {
                problems.append("\(inputs[s.input].label) has \(layerCount(inputs[s.input].checkpoint)) layers, \(inputs[ref].label) has \(layers)")
            }
            if let b = baseIndex, !sources.contains(where: { $0.input == b }) {
                // mergekit appends a base that is not listed as one more source without parameters.
                sources.append((input: b, params: ParameterTable(), range: 0..<layers))
                if method.baseRole == .plainInput {
                    notes.append("\(method.name) has no base: base_model \(inputs[b].label) is merged as one more input (as mergekit does)")
                }
            }
            slices = [Slice(sources: sources, params: ParameterTable(), base: baseIndex)]
        } else {
            for s in recipe.slices ?? [] {
                let b = (s.baseModel ?? recipe.baseModel).flatMap { indexOf[$0] }
                slices.append(Slice(sources: s.sources.map { (input: indexOf[$0.model]!, params: $0.parameters, range: $0.layerRange!) },
                                    params: s.parameters, base: b))
                for src in s.sources {
                    let n = layerCount(inputs[indexOf[src.model]!].checkpoint)
                    if src.layerRange!.upperBound > n {
                        problems.append("slice source \(src.model) (line \(src.line)): layer_range [\(src.layerRange!.lowerBound), \(src.layerRange!.upperBound)) exceeds its \(n) layers")
                    }
                }
            }
        }

        // A layer range beyond a model's layers would plan one job per missing layer (a
        // `[0, 1000000000]` range ran out of memory, even with --dry-run): stop here.
        if problems.contains(where: { $0.contains("layer_range [") }) { throw MergeError.preflight(problems) }

        // 3. Output tensors: (name, t, slice, per-source input names).
        struct Target { var output: String; var t: Double; var slice: Int; var layerOffset: Int? }
        var targets: [Target] = []
        var layerOffset = 0
        for (si, slice) in slices.enumerated() {
            let templateInput = slice.base.flatMap { b in slice.sources.contains { $0.input == b } ? b : nil } ?? slice.sources[0].input
            let templateRange = slice.sources.first { $0.input == templateInput }!.range
            let count = templateRange.count
            let templates = inputs[templateInput].checkpoint.tensorNames.filter { TensorNaming.layerIndex($0) == templateRange.lowerBound }
            for k in 0..<count {
                let t = count == 1 ? 1 : Double(k) / Double(count - 1)
                for name in templates {
                    targets.append(Target(output: TensorNaming.renumber(name, to: layerOffset + k), t: t, slice: si, layerOffset: k))
                }
            }
            layerOffset += count
        }
        // Non-layer tensors: embeddings from the first slice's sources, the rest from the last's (t = 0).
        func nonLayer(_ s: Slice) -> [String] {
            var set = Set<String>()
            for src in s.sources { for n in inputs[src.input].checkpoint.tensorNames where TensorNaming.layerIndex(n) == nil { set.insert(n) } }
            return set.sorted()
        }
        let firstNames = nonLayer(slices[0]).filter { TensorNaming.outputOrder($0, "0") }
        let lastNames = nonLayer(slices[slices.count - 1]).filter { !TensorNaming.outputOrder($0, "0") }
        targets += firstNames.map { Target(output: $0, t: 0, slice: 0, layerOffset: nil) }
        targets += lastNames.map { Target(output: $0, t: 0, slice: slices.count - 1, layerOffset: nil) }
        // A tied head present in some input only: keep it (the others supply their embeddings).
        targets.sort { TensorNaming.outputOrder($0.output, $1.output) }

        // The tokenizer: its source and, when set, the output vocabulary every input's
        // vocabulary matrices are laid out in.
        let configSource = baseIndex ?? slices[0].sources[0].input
        var tokenizerSource = configSource
        var alignment: VocabularyAlignment?
        if let t = recipe.tokenizerSource {
            var source: TokenizerUnion.Source?
            switch t {
            case "union": source = .union
            case "base": source = .base
            default:
                if let i = indexOf[t] { source = .model(i); tokenizerSource = i } else {
                    // A tokenizer-only donor folder, resolved like a model path (mergekit 0.1.5).
                    let path = resolve(t, options.searchDirectory)
                    var isDir: ObjCBool = false
                    let key = recipe.tokenEmbeddings.isEmpty && recipe.padVocabularyToMultipleOf == nil ? "tokenizer_source" : "tokenizer.source"
                    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                        if FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("tokenizer.json").path) {
                            source = .donor(URL(fileURLWithPath: path))
                        } else {
                            problems.append("\(key) \"\(t)\": donor folder \(path) has no tokenizer.json (a tokenizer donor needs a fast tokenizer, as in mergekit)")
                        }
                    } else {
                        problems.append("\(key) \"\(t)\" is neither \"base\", \"union\", one of the recipe's models nor a folder with a tokenizer.json")
                    }
                }
            }
            if let source {
                let r = TokenizerUnion.align(inputs: inputs, reference: configSource, source: source, recipe: recipe, indexOf: indexOf)
                problems += r.problems
                notes += r.notes
                alignment = r.alignment
                if alignment != nil, options.vocabulary != nil {
                    notes.append("--vocab is not used: \(recipe.tokenEmbeddings.isEmpty ? "tokenizer_source" : "tokenizer") lays the vocabulary matrices out in the output vocabulary")
                }
            }
        }
        var vocabularyJobs = 0

        // 4. Jobs with pre-flight checks.
        var jobs: [MergeJob] = []
        var missing: [Int: [String]] = [:]
        var tiedNoted = Set<Int>()
        var vocabRows: Int?
        let outDTypeOverride = recipe.outDType ?? recipe.dtype
        if slices.contains(where: { $0.base == nil }) && method.baseRole == .required {
            problems.append(MergeError.baseRequired(method: method.name).description)
        }
        for target in targets {
            let slice = slices[target.slice]
            var resolvedInputs: [(source: Int, input: JobInput, info: TensorInfo)] = []
            for (s, src) in slice.sources.enumerated() {
                let ckpt = inputs[src.input].checkpoint
                var name = target.output
                if let k = target.layerOffset { name = TensorNaming.renumber(target.output, to: src.range.lowerBound + k) }
                if !ckpt.has(name), TensorNaming.isOutputHead(name),
                   let alias = TensorNaming.tiedEmbeddingNames.first(where: { ckpt.has($0) }) {
                    if tiedNoted.insert(src.input).inserted {
                        notes.append("\(inputs[src.input].label) has no \(name) (tied embeddings): its \(alias) is used instead")
                    }
                    name = alias
                }
                guard let info = ckpt.info(name) else {
                    missing[src.input, default: []].append(name)
                    continue
                }
                if !info.dtype.isFloatingPoint || !info.dtype.isConvertibleToFloat32 {
                    problems.append("tensor \"\(name)\" of \(inputs[src.input].label) has dtype \(info.dtype.rawValue), which cannot be merged")
                    continue
                }
                resolvedInputs.append((s, JobInput(model: src.input, tensor: name), info))
            }
            guard resolvedInputs.count == slice.sources.count else { continue }

            // Shapes, with the vocabulary choice for embedding matrices.
            var shape = resolvedInputs[0].info.shape
            let shapes = Set(resolvedInputs.map(\.info.shape))
            let aligned = alignment != nil && TensorNaming.isVocabularyMatrix(target.output) && shapes.allSatisfy { $0.rank >= 2 }
            if aligned {
                let cols = Set(resolvedInputs.map { Array($0.info.shape.dims.dropFirst()) })
                guard cols.count == 1 else {
                    let desc = resolvedInputs.map { "\(inputs[$0.input.model].label): \($0.info.shape)" }.joined(separator: ", ")
                    problems.append("shape mismatch for \"\(target.output)\" beyond its vocabulary rows: \(desc)")
                    continue
                }
                shape = Shape([alignment!.rows] + cols.first!)
            } else if shapes.count > 1 {
                let cols = Set(resolvedInputs.map { Array($0.info.shape.dims.dropFirst()) })
                let baseInfo = resolvedInputs.first { $0.input.model == slice.base }
                if TensorNaming.isVocabularyMatrix(target.output), shapes.allSatisfy({ $0.rank == 2 }), cols.count == 1 {
                    let rows = resolvedInputs.map { "\(inputs[$0.input.model].label): \($0.info.shape[0])" }.joined(separator: ", ")
                    switch options.vocabulary {
                    case nil:
                        vocabularyMismatches.append(target.output)
                        problems.append("vocabulary sizes differ for \"\(target.output)\" (\(rows) rows); choose --vocab truncate (keep the first common rows) or --vocab base (keep the base model's rows)")
                        continue
                    case .truncate?:
                        shape = Shape([resolvedInputs.map { $0.info.shape[0] }.min()!] + Array(shape.dims.dropFirst()))
                    case .base?:
                        guard let baseInfo else {
                            problems.append("--vocab base needs a base model for \"\(target.output)\" (\(rows) rows)")
                            continue
                        }
                        shape = baseInfo.info.shape
                        for i in resolvedInputs.indices where resolvedInputs[i].info.shape[0] < shape[0] {
                            resolvedInputs[i].input.padFrom = baseInfo.input.model
                        }
                    }
                    vocabRows = shape[0]
                } else {
                    let desc = resolvedInputs.map { "\(inputs[$0.input.model].label): \($0.info.shape)" }.joined(separator: ", ")
                    problems.append("shape mismatch for \"\(target.output)\": \(desc)")
                    continue
                }
            }

            // Roles and parameters.
            var baseInput: JobInput?
            var modelInputs: [JobInput] = []
            var modelSources: [Int] = []
            for r in resolvedInputs {
                if method.baseRole != .plainInput && r.input.model == slice.base && baseInput == nil {
                    baseInput = r.input
                } else {
                    modelInputs.append(r.input)
                    modelSources.append(r.source)
                }
            }
            do {
                try method.checkInputs(modelCount: modelInputs.count, hasBase: baseInput != nil)
            } catch {
                if !problems.contains(error.localizedDescriptionText) { problems.append(error.localizedDescriptionText) }
                continue
            }
            var params = ResolvedParameters()
            for spec in method.parameters {
                switch spec.scope {
                case .global:
                    let v = slice.params[spec.name]?.evaluate(tensor: target.output, t: target.t)
                        ?? recipe.parameters[spec.name]?.evaluate(tensor: target.output, t: target.t)
                        ?? spec.defaultValue
                    if let v, let why = spec.problem(with: v, allowExtrapolation: options.allowExtrapolation) {
                        let p = "parameter \"\(spec.name)\" of \(method.name) \(why)"
                        if !problems.contains(p) { problems.append(p) }
                    }
                    if let v { params.global[spec.name] = v } else {
                        let p = "missing required parameter \"\(spec.name)\" of \(method.name) (set it under parameters:)"
                        if !problems.contains(p) { problems.append(p) }
                    }
                case .perModel:
                    break
                }
            }
            for (k, source) in modelSources.enumerated() {
                var dict: [String: ParameterValue] = [:]
                var rangesHold = true
                let inputName = modelInputs[k].tensor
                for spec in method.parameters where spec.scope == .perModel {
                    let v = slice.sources[source].params[spec.name]?.evaluate(tensor: inputName, t: target.t)
                        ?? slice.params[spec.name]?.evaluate(tensor: inputName, t: target.t)
                        ?? recipe.parameters[spec.name]?.evaluate(tensor: inputName, t: target.t)
                        ?? spec.defaultValue
                    if let v, let why = spec.problem(with: v, allowExtrapolation: options.allowExtrapolation) {
                        let p = "parameter \"\(spec.name)\" for model \(inputs[slice.sources[source].input].label) \(why)"
                        if !problems.contains(p) { problems.append(p) }
                        rangesHold = false
                    }
                    if let v { dict[spec.name] = v } else {
                        let label = inputs[slice.sources[source].input].label
                        let hint = slice.sources[source].input == slice.base && recipe.models != nil
                            ? " (mergekit adds base_model as an input of \(method.name); list it under models: with a \(spec.name), or drop base_model)" : ""
                        let p = "missing required parameter \"\(spec.name)\" for model \(label)\(hint)"
                        if !problems.contains(p) { problems.append(p) }
                    }
                }
                // Constraints between parameters, once each value is in its own range.
                if rangesHold {
                    for (name, why) in method.perModelParameterProblems(dict) {
                        let p = "parameter \"\(name)\" for model \(inputs[slice.sources[source].input].label) \(why)"
                        if !problems.contains(p) { problems.append(p) }
                    }
                }
                params.perModel.append(dict)
            }
            let refDType = (resolvedInputs.first { $0.input.model == baseInput?.model } ?? resolvedInputs[0]).info.dtype
            var rows: VocabularyRows?
            if aligned, let alignment {
                let ordered = [baseInput].compactMap { $0 } + modelInputs
                let planInputs = ordered.map(\.model)
                let rowCounts = ordered.map { inp in resolvedInputs.first { $0.input == inp }!.info.shape[0] }
                if alignment.isIdentity(rowCounts: rowCounts, inputs: planInputs) {
                    shape = resolvedInputs[0].info.shape
                } else {
                    let r = VocabularyRows.make(alignment, inputs: planInputs, rowCounts: rowCounts, base: slice.base,
                                                tensor: target.output, labels: inputs.map(\.label))
                    for p in r.problems where !problems.contains(p) { problems.append(p) }
                    for n in r.notes where !notes.contains(n) { notes.append(n) }
                    rows = r.rows
                    vocabularyJobs += 1
                }
            }
            var job = MergeJob(output: target.output, shape: shape, outDType: outDTypeOverride ?? refDType,
                               base: baseInput, models: modelInputs, parameters: params, t: target.t)
            job.vocabularyRows = rows
            jobs.append(job)
        }
        for (input, names) in missing.sorted(by: { $0.key < $1.key }) {
            let shown = names.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
            problems.append("\(inputs[input].label) lacks \(names.count) tensor\(names.count == 1 ? "" : "s") the merge needs: \(shown)\(names.count > 5 ? ", ..." : "")")
        }
        if recipe.dtype != nil && recipe.outDType == nil {
            notes.append("dtype \(recipe.dtype!.recipeName) sets the output dtype; arithmetic is Float32/Float64 whatever the dtype (mergekit computes in dtype)")
        }

        let configCheck = ConfigPreflight.check(inputs, reference: configSource, allowMismatch: options.allowConfigMismatch)
        problems += configCheck.problems
        notes += configCheck.notes
        if let a = alignment {
            if vocabularyJobs == 0 && a.files == nil {
                alignment = nil
                if recipe.tokenizerSource == "union" {
                    notes.append("tokenizer_source: union: every input has the same vocabulary, so the union is \(inputs[configSource].label)'s tokenizer")
                }
            } else {
                vocabRows = a.rows
                var donorNote: String?
                if let t = recipe.tokenizerSource, t != "union", t != "base", indexOf[t] == nil {
                    donorNote = "the donor \(resolve(t, options.searchDirectory))'s tokenizer"
                }
                let added = donorNote != nil ? 0 : a.tokens.count - (TokenizerUnion.configVocabSize(inputs[tokenizerSource].checkpoint).map { min($0, a.tokens.count) } ?? a.tokens.count)
                notes.append("\(recipe.tokenEmbeddings.isEmpty && recipe.padVocabularyToMultipleOf == nil ? "tokenizer_source" : "tokenizer"): "
                    + "output vocabulary of \(a.tokens.count) tokens (\(donorNote ?? "\(inputs[tokenizerSource].label)'s tokenizer")\(added > 0 ? " + \(added)" : "")), "
                    + "\(a.rows) rows; \(vocabularyJobs) vocabulary matri\(vocabularyJobs == 1 ? "x" : "ces") laid out in it per input")
            }
        } else if recipe.tokenizerSource == "union", problems.isEmpty {
            notes.append("tokenizer_source: union: every input has the same vocabulary, so the union is \(inputs[configSource].label)'s tokenizer")
        }
        let layersOut = recipe.slices != nil ? layerOffset : nil
        var plan = MergePlan(recipe: recipe, method: method, inputs: inputs, jobs: jobs, configSource: configSource,
                             tokenizerSource: tokenizerSource, outputLayerCount: layersOut, outputVocabularyRows: vocabRows,
                             notes: notes, problems: problems)
        plan.seed = options.seed
        plan.vocabularyMismatches = vocabularyMismatches
        plan.vocabulary = alignment
        if let value = recipe.chatTemplate {
            var order = [tokenizerSource]
            for i in inputs.indices where i != tokenizerSource { order.append(i) }
            switch ChatTemplates.resolve(value, inputs: order.map { (inputs[$0].label, inputs[$0].checkpoint.directory) }) {
            case let .template(t, note): plan.chatTemplate = t; plan.notes.append(note)
            case let .none(note): plan.notes.append(note)
            case let .problem(p): plan.problems.append(p)
            }
        }
        return plan
    }

    static func resolve(_ path: String, _ dir: String?) -> String {
        if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return path }
        if let dir {
            let p = URL(fileURLWithPath: dir).appendingPathComponent(path).path
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        return path
    }

    /// `num_hidden_layers` (or `n_layer`) from config.json, else one more than the largest layer index.
    public static func layerCount(_ c: Checkpoint) -> Int {
        if let config = try? c.folderJSON("config.json") {
            for key in ["num_hidden_layers", "n_layer", "num_layers"] {
                if case let .integer(n)? = config[key] { return n }
            }
        }
        return (c.tensorNames.compactMap(TensorNaming.layerIndex).max() ?? -1) + 1
    }
}

extension Error {
    /// `description` for our errors, `localizedDescription` otherwise.
    var localizedDescriptionText: String { String(describing: self) }
}

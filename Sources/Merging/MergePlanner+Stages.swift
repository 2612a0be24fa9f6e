import Checkpoints
import Foundation
import Tensors

extension MergePlanner {
    /// One output tensor before its job is built: its name, the interpolation position t of its
    /// layer within the slice, the slice, and the layer's offset within the slice (nil outside
    /// the layers).
    struct Target {
        var output: String
        var t: Double
        var slice: Int
        var layerOffset: Int?
    }

    /// Where config.json and the tokenizer come from, and the output vocabulary the vocabulary
    /// matrices are laid out in when the tokenizer changes.
    struct TokenizerChoice {
        var configSource: Int
        var tokenizerSource: Int
        var alignment: VocabularyAlignment?
    }
}

/// The state of one planning run (`MergePlanner.plan`): the opened inputs, and the problems and
/// notes every stage adds, reported together.
final class PlanningRun {
    typealias Slice = MergePlanner.Slice
    typealias Target = MergePlanner.Target

    let recipe: Recipe
    let method: any MergeMethod
    let options: PlanOptions
    private(set) var inputs: [PlannedInput] = []
    private(set) var indexOf: [String: Int] = [:]
    var problems: [String] = []
    var notes: [String] = []
    var vocabularyMismatches: [String] = []
    // Filled while the jobs are built.
    private var missing: [Int: [String]] = [:]
    private var tiedNoted = Set<Int>()
    private var vocabRows: Int?
    private var vocabularyJobs = 0

    init(recipe: Recipe, method: any MergeMethod, options: PlanOptions) {
        self.recipe = recipe
        self.method = method
        self.options = options
    }

    /// Adds a problem once (the same message from many tensors is shown once).
    func problem(_ p: String) { if !problems.contains(p) { problems.append(p) } }

    var baseIndex: Int? { recipe.baseModel.flatMap { indexOf[$0] } }

    // MARK: 1. Inputs

    /// Opens every input once; any that cannot be opened stops the plan with all of them listed.
    func openInputs() throws {
        for path in recipe.modelPaths {
            let resolved = MergePlanner.resolve(path, options.searchDirectory)
            do {
                let c = try ModelReference.open(path, allowDeltas: options.allowDeltas, searchDirectory: options.searchDirectory)
                indexOf[path] = inputs.count
                inputs.append(PlannedInput(label: path, path: resolved, checkpoint: c))
            } catch {
                problems.append("cannot open model \"\(path)\": \(error)")
            }
        }
        guard problems.isEmpty else { throw MergeError.preflight(problems) }
    }

    // MARK: 2. Slices

    /// The recipe as slices: `models:` is one slice over every layer; `slices:` as written.
    func slices() throws -> [Slice] {
        var slices: [Slice] = []
        if let models = recipe.models {
            let ref = baseIndex ?? indexOf[models[0].model]!
            let layers = MergePlanner.layerCount(inputs[ref].checkpoint)
            var sources = models.map { (input: indexOf[$0.model]!, params: $0.parameters, range: 0..<layers) }
            for s in sources where MergePlanner.layerCount(inputs[s.input].checkpoint) != layers {
                problems.append("\(inputs[s.input].label) has \(MergePlanner.layerCount(inputs[s.input].checkpoint)) layers, \(inputs[ref].label) has \(layers)")
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
                    let n = MergePlanner.layerCount(inputs[indexOf[src.model]!].checkpoint)
                    if src.layerRange!.upperBound > n {
                        problems.append("slice source \(src.model) (line \(src.line)): layer_range [\(src.layerRange!.lowerBound), \(src.layerRange!.upperBound)) exceeds its \(n) layers")
                    }
                }
            }
        }
        // A layer range beyond a model's layers would plan one job per missing layer (a
        // `[0, 1000000000]` range ran out of memory, even with --dry-run): stop here.
        if problems.contains(where: { $0.contains("layer_range [") }) { throw MergeError.preflight(problems) }
        return slices
    }

    // MARK: 3. Output tensors

    /// Every output tensor in output order, and the number of output layers: each slice's layers
    /// renumbered after the previous slice's (t runs from 0 to 1 across a slice), then the
    /// tensors outside the layers (embeddings from the first slice's sources, the rest from the
    /// last's; t = 0).
    func targets(_ slices: [Slice]) -> (targets: [Target], layers: Int) {
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
        return (targets, layerOffset)
    }

    // MARK: 4. Tokenizer

    /// The tokenizer's source and, when `tokenizer_source` (or `tokenizer:`) is set, the output
    /// vocabulary every input's vocabulary matrices are laid out in.
    func tokenizer(_ slices: [Slice]) -> MergePlanner.TokenizerChoice {
        let configSource = baseIndex ?? slices[0].sources[0].input
        var choice = MergePlanner.TokenizerChoice(configSource: configSource, tokenizerSource: configSource, alignment: nil)
        guard let t = recipe.tokenizerSource else { return choice }
        var source: TokenizerUnion.Source?
        switch t {
        case "union": source = .union
        case "base": source = .base
        default:
            if let i = indexOf[t] { source = .model(i); choice.tokenizerSource = i } else {
                // A tokenizer-only donor folder, resolved like a model path (mergekit 0.1.5).
                let path = MergePlanner.resolve(t, options.searchDirectory)
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
            choice.alignment = r.alignment
            if r.alignment != nil, options.vocabulary != nil {
                notes.append("--vocab is not used: \(recipe.tokenEmbeddings.isEmpty ? "tokenizer_source" : "tokenizer") lays the vocabulary matrices out in the output vocabulary")
            }
        }
        return choice
    }

    // MARK: 5. Jobs

    /// One job per output tensor whose inputs all pass the checks.
    func jobs(_ targets: [Target], slices: [Slice], alignment: VocabularyAlignment?) -> [MergeJob] {
        if slices.contains(where: { $0.base == nil }) && method.baseRole == .required {
            problems.append(MergeError.baseRequired(method: method.name).description)
        }
        return targets.compactMap { job(for: $0, slice: slices[$0.slice], alignment: alignment) }
    }

    typealias ResolvedInput = (source: Int, input: JobInput, info: TensorInfo)

    private func job(for target: Target, slice: Slice, alignment: VocabularyAlignment?) -> MergeJob? {
        guard var resolved = resolveInputs(target, slice) else { return nil }
        guard let laidOut = outputShape(target, slice, &resolved, alignment: alignment) else { return nil }
        var shape = laidOut.0
        let aligned = laidOut.aligned
        // Roles: the base (unless the method takes it as a plain input), then the models.
        var baseInput: JobInput?
        var modelInputs: [JobInput] = []
        var modelSources: [Int] = []
        for r in resolved {
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
            problem(error.localizedDescriptionText)
            return nil
        }
        let params = parameters(target, slice, modelInputs: modelInputs, modelSources: modelSources)
        let refDType = (resolved.first { $0.input.model == baseInput?.model } ?? resolved[0]).info.dtype
        var rows: VocabularyRows?
        if aligned, let alignment {
            let ordered = [baseInput].compactMap { $0 } + modelInputs
            let planInputs = ordered.map(\.model)
            let rowCounts = ordered.map { inp in resolved.first { $0.input == inp }!.info.shape[0] }
            if alignment.isIdentity(rowCounts: rowCounts, inputs: planInputs) {
                shape = resolved[0].info.shape
            } else {
                let r = VocabularyRows.make(alignment, inputs: planInputs, rowCounts: rowCounts, base: slice.base,
                                            tensor: target.output, labels: inputs.map(\.label))
                for p in r.problems { problem(p) }
                for n in r.notes where !notes.contains(n) { notes.append(n) }
                rows = r.rows
                vocabularyJobs += 1
            }
        }
        var job = MergeJob(output: target.output, shape: shape, outDType: recipe.outDType ?? recipe.dtype ?? refDType,
                           base: baseInput, models: modelInputs, parameters: params, t: target.t)
        job.vocabularyRows = rows
        return job
    }

    /// Each source's tensor for `target` (a missing output head falls back to the tied
    /// embedding, with a note), or nil when one is missing (collected per input) or not a float.
    private func resolveInputs(_ target: Target, _ slice: Slice) -> [ResolvedInput]? {
        var resolved: [ResolvedInput] = []
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
            resolved.append((s, JobInput(model: src.input, tensor: name), info))
        }
        return resolved.count == slice.sources.count ? resolved : nil
    }

    /// The output shape, and whether the tensor is laid out in the output vocabulary: inputs
    /// must agree, except vocabulary matrices, whose rows follow the tokenizer's alignment or
    /// `--vocab` (truncate to the common rows, or the base's rows with smaller inputs padded
    /// from the base). Nil, with a problem, when they cannot be reconciled.
    private func outputShape(_ target: Target, _ slice: Slice, _ resolved: inout [ResolvedInput],
                             alignment: VocabularyAlignment?) -> (Shape, aligned: Bool)? {
        var shape = resolved[0].info.shape
        let shapes = Set(resolved.map(\.info.shape))
        let aligned = alignment != nil && TensorNaming.isVocabularyMatrix(target.output) && shapes.allSatisfy { $0.rank >= 2 }
        if aligned {
            let cols = Set(resolved.map { Array($0.info.shape.dims.dropFirst()) })
            guard cols.count == 1 else {
                let desc = resolved.map { "\(inputs[$0.input.model].label): \($0.info.shape)" }.joined(separator: ", ")
                problems.append("shape mismatch for \"\(target.output)\" beyond its vocabulary rows: \(desc)")
                return nil
            }
            return (Shape([alignment!.rows] + cols.first!), true)
        }
        guard shapes.count > 1 else { return (shape, false) }
        let cols = Set(resolved.map { Array($0.info.shape.dims.dropFirst()) })
        let baseInfo = resolved.first { $0.input.model == slice.base }
        guard TensorNaming.isVocabularyMatrix(target.output), shapes.allSatisfy({ $0.rank == 2 }), cols.count == 1 else {
            let desc = resolved.map { "\(inputs[$0.input.model].label): \($0.info.shape)" }.joined(separator: ", ")
            problems.append("shape mismatch for \"\(target.output)\": \(desc)")
            return nil
        }
        let rows = resolved.map { "\(inputs[$0.input.model].label): \($0.info.shape[0])" }.joined(separator: ", ")
        switch options.vocabulary {
        case nil:
            vocabularyMismatches.append(target.output)
            problems.append("vocabulary sizes differ for \"\(target.output)\" (\(rows) rows); choose --vocab truncate (keep the first common rows) or --vocab base (keep the base model's rows)")
            return nil
        case .truncate?:
            shape = Shape([resolved.map { $0.info.shape[0] }.min()!] + Array(shape.dims.dropFirst()))
        case .base?:
            guard let baseInfo else {
                problems.append("--vocab base needs a base model for \"\(target.output)\" (\(rows) rows)")
                return nil
            }
            shape = baseInfo.info.shape
            for i in resolved.indices where resolved[i].info.shape[0] < shape[0] {
                resolved[i].input.padFrom = baseInfo.input.model
            }
        }
        vocabRows = shape[0]
        return (shape, false)
    }

    /// The method's parameters for one tensor: global ones from the slice, then the recipe,
    /// then the default; per-model ones from the source, the slice, the recipe, the default.
    /// Values out of range, missing values and constraints between values become problems.
    private func parameters(_ target: Target, _ slice: Slice, modelInputs: [JobInput], modelSources: [Int]) -> ResolvedParameters {
        var params = ResolvedParameters()
        for spec in method.parameters where spec.scope == .global {
            let v = slice.params[spec.name]?.evaluate(tensor: target.output, t: target.t)
                ?? recipe.parameters[spec.name]?.evaluate(tensor: target.output, t: target.t)
                ?? spec.defaultValue
            if let v, let why = spec.problem(with: v, allowExtrapolation: options.allowExtrapolation) {
                problem("parameter \"\(spec.name)\" of \(method.name) \(why)")
            }
            if let v { params.global[spec.name] = v } else {
                problem("missing required parameter \"\(spec.name)\" of \(method.name) (set it under parameters:)")
            }
        }
        for (k, source) in modelSources.enumerated() {
            var dict: [String: ParameterValue] = [:]
            var rangesHold = true
            let inputName = modelInputs[k].tensor
            let label = inputs[slice.sources[source].input].label
            for spec in method.parameters where spec.scope == .perModel {
                let v = slice.sources[source].params[spec.name]?.evaluate(tensor: inputName, t: target.t)
                    ?? slice.params[spec.name]?.evaluate(tensor: inputName, t: target.t)
                    ?? recipe.parameters[spec.name]?.evaluate(tensor: inputName, t: target.t)
                    ?? spec.defaultValue
                if let v, let why = spec.problem(with: v, allowExtrapolation: options.allowExtrapolation) {
                    problem("parameter \"\(spec.name)\" for model \(label) \(why)")
                    rangesHold = false
                }
                if let v { dict[spec.name] = v } else {
                    let hint = slice.sources[source].input == slice.base && recipe.models != nil
                        ? " (mergekit adds base_model as an input of \(method.name); list it under models: with a \(spec.name), or drop base_model)" : ""
                    problem("missing required parameter \"\(spec.name)\" for model \(label)\(hint)")
                }
            }
            // Constraints between parameters, once each value is in its own range.
            if rangesHold {
                for (name, why) in method.perModelParameterProblems(dict) {
                    problem("parameter \"\(name)\" for model \(label) \(why)")
                }
            }
            params.perModel.append(dict)
        }
        return params
    }

    // MARK: 6. Checks across inputs, and the plan

    /// The missing tensors per input, the dtype note, config.json's pre-flight check, the
    /// vocabulary notes and the chat template; then the plan.
    func finish(jobs: [MergeJob], tokenizer: MergePlanner.TokenizerChoice, outputLayers: Int?) -> MergePlan {
        for (input, names) in missing.sorted(by: { $0.key < $1.key }) {
            let shown = names.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
            problems.append("\(inputs[input].label) lacks \(names.count) tensor\(names.count == 1 ? "" : "s") the merge needs: \(shown)\(names.count > 5 ? ", ..." : "")")
        }
        if recipe.dtype != nil && recipe.outDType == nil {
            notes.append("dtype \(recipe.dtype!.recipeName) sets the output dtype; arithmetic is Float32/Float64 whatever the dtype (mergekit computes in dtype)")
        }
        let configSource = tokenizer.configSource, tokenizerSource = tokenizer.tokenizerSource
        let configCheck = ConfigPreflight.check(inputs, reference: configSource, allowMismatch: options.allowConfigMismatch)
        problems += configCheck.problems
        notes += configCheck.notes
        var alignment = tokenizer.alignment
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
                    donorNote = "the donor \(MergePlanner.resolve(t, options.searchDirectory))'s tokenizer"
                }
                let added = donorNote != nil ? 0 : a.tokens.count - (TokenizerUnion.configVocabSize(inputs[tokenizerSource].checkpoint).map { min($0, a.tokens.count) } ?? a.tokens.count)
                notes.append("\(recipe.tokenEmbeddings.isEmpty && recipe.padVocabularyToMultipleOf == nil ? "tokenizer_source" : "tokenizer"): "
                    + "output vocabulary of \(a.tokens.count) tokens (\(donorNote ?? "\(inputs[tokenizerSource].label)'s tokenizer")\(added > 0 ? " + \(added)" : "")), "
                    + "\(a.rows) rows; \(vocabularyJobs) vocabulary matri\(vocabularyJobs == 1 ? "x" : "ces") laid out in it per input")
            }
        } else if recipe.tokenizerSource == "union", problems.isEmpty {
            notes.append("tokenizer_source: union: every input has the same vocabulary, so the union is \(inputs[configSource].label)'s tokenizer")
        }
        var plan = MergePlan(recipe: recipe, method: method, inputs: inputs, jobs: jobs, configSource: configSource,
                             tokenizerSource: tokenizerSource, outputLayerCount: outputLayers, outputVocabularyRows: vocabRows,
                             notes: notes, problems: problems)
        plan.seed = options.seed
        plan.threads = options.threads
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
}

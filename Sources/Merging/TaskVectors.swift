import Checkpoints
import Foundation
import Tensors

/// Task vectors as files (Ilharco et al. 2023, arXiv:2212.04089): `extract` writes
/// `τ = tuned − base` as a checkpoint whose metadata says `weightsmith.kind = task_vector`;
/// `compose` builds `base + Σ c_i τ_i` from tuned checkpoints and stored task vectors.
public enum TaskVectors {
    public static let kindKey = ModelReference.kindKey
    public static let kindValue = ModelReference.taskVectorKind

    /// True when the checkpoint was written by `extract`.
    public static func isTaskVector(_ c: Checkpoint) -> Bool { c.metadata[kindKey] == kindValue }

    /// The plan that writes `tuned − base` for every tensor, keeping the `topK` fraction of
    /// largest magnitudes per tensor when `topK < 1` (exact count `Int(topK·n)`, ties by index).
    public static func extractPlan(base: String, tuned: String, topK: Double = 1, outDType: DType? = nil,
                                   threads: Int = ParallelLoops.machineThreads) throws -> MergePlan {
        guard topK > 0, topK <= 1 else { throw MergeError.invalidParameter(name: "top-k", reason: "must be in (0, 1], got \(topK)") }
        var params = ParameterTable()
        params.settings["top_k"] = .value(.number(topK))
        let recipe = Recipe(mergeMethod: TaskVectorExtraction.methodName, baseModel: base, models: [RecipeSource(model: tuned)],
                            parameters: params, outDType: outDType, file: "<task-vector extract>")
        return try MergePlanner.plan(recipe, method: TaskVectorExtraction(), options: PlanOptions(threads: threads))
    }

    /// The reference under which a compose term is read: a sparse delta (a `graft` or LT-SFT
    /// output) becomes `BASE+DELTA`, whose difference to the base is the delta at its entries and
    /// exactly 0 elsewhere; anything else is returned as given.
    public static func modelReference(_ path: String, base: String) -> String {
        (try? ModelReference.format(of: path)) == .sparseDelta ? base + "+" + path : path
    }

    /// The plan of `base + Σ c_i τ_i`; a term's model is a tuned checkpoint (τ = x − base), a
    /// stored task vector (used as τ) or a sparse delta (read as `BASE+DELTA`, see `modelReference`). Errors name the unknown term.
    /// `lambda` scales every coefficient (Ilharco et al. 2023, §2: θ = θ_base + λ Σ c_i τ_i).
    public static func composePlan(base: String, expression: String, models: [String: String], outDType: DType? = nil,
                                   lambda: Double = 1, vocabulary: VocabularyChoice? = nil,
                                   threads: Int = ParallelLoops.machineThreads) throws -> MergePlan {
        let terms = try CompositionExpression.parse(expression)
        for t in terms where models[t.name] == nil {
            throw MergeError.invalidExpression(expression: expression, position: t.position,
                reason: "\"\(t.name)\" is not defined; add --model \(t.name)=PATH (defined: \(models.keys.sorted().joined(separator: ", ")))")
        }
        var params = ParameterTable()
        params.settings["lambda"] = .value(.number(lambda))
        let sources = terms.map { t in
            var p = ParameterTable()
            p.settings["weight"] = .value(.number(t.coefficient))
            return RecipeSource(model: modelReference(models[t.name]!, base: base), parameters: p)
        }
        let recipe = Recipe(mergeMethod: "task_arithmetic", baseModel: base, models: sources, parameters: params, outDType: outDType,
                            file: "<compose \(expression)>")
        var options = PlanOptions(threads: threads)
        options.allowDeltas = true
        options.vocabulary = vocabulary
        var plan = try MergePlanner.plan(recipe, options: options)
        let deltaInputs = Set(plan.inputs.indices.filter { isTaskVector(plan.inputs[$0].checkpoint) })
        for j in plan.jobs.indices {
            for m in plan.jobs[j].models.indices where deltaInputs.contains(plan.jobs[j].models[m].model) {
                plan.jobs[j].models[m].kind = .delta
            }
        }
        if plan.jobs.isEmpty == false, isTaskVector(plan.inputs[plan.configSource].checkpoint) {
            plan.problems.append("--base \(base) is a task vector; the base must be a model")
        }
        return plan
    }
}

/// `τ = x − base`, optionally reduced to the `top_k` fraction of largest magnitudes. Not a
/// registered merge method: used by `task-vector extract`.
public struct TaskVectorExtraction: MergeMethod {
    public static let methodName = "task_vector"
    public init() {}
    public let name = TaskVectorExtraction.methodName
    public let reference = "Ilharco et al. 2023, Editing models with task arithmetic, arXiv:2212.04089"
    public let summary = "task vector: fine-tune minus base"
    public let baseRole = BaseRole.required
    public let modelCount = 1...1
    public var scratchPerElement: Double { 2 }
    public var parameters: [ParameterSpec] { [.number("top_k", .global, default: 1, "fraction of entries kept, largest magnitudes", range: .leftOpen(0, 1))] }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let x = inputs.models[0]
        inputs.loops.forEachChunk(inputs.count) { r in for i in r { out[i] = x[i] - base[i] } }
        let k = try p.number("top_k")
        if k < 1 {
            try Sparsifier.apply(.magnitude, out, cols: 1, SparsifierSettings(density: k, gamma: 0, epsilon: 0, rescale: false),
                                 random: MergeRandom(seed: 0, tensor: inputs.tensorName, model: 0), tensor: inputs.tensorName)
        }
    }
}

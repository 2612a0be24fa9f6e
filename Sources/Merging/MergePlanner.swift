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
    /// Threads the plan's merge runs on (`MergePlan.threads`; default every core).
    public var threads = ParallelLoops.machineThreads
    public init(vocabulary: VocabularyChoice? = nil, seed: UInt64 = 0, searchDirectory: String? = nil,
                threads: Int = ParallelLoops.machineThreads) {
        self.threads = threads
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
    ///
    /// The stages, as mergekit's planner walks a recipe: open every input once; normalise the
    /// recipe to slices; list the output tensors (per slice and layer, then the tensors outside
    /// the layers); lay out the vocabulary when the tokenizer changes; one job per output tensor
    /// with its pre-flight checks; then the checks across inputs (config.json, the vocabulary
    /// notes, the chat template). Each stage is one method of `PlanningRun`, and every stage
    /// adds its problems to the run instead of stopping, so the user sees them all at once.
    public static func plan(_ recipe: Recipe, method override: (any MergeMethod)? = nil, options: PlanOptions = PlanOptions()) throws -> MergePlan {
        let run = PlanningRun(recipe: recipe, method: try override ?? MergeMethodRegistry.method(named: recipe.mergeMethod), options: options)
        try run.openInputs()
        let slices = try run.slices()
        let (targets, outputLayers) = run.targets(slices)
        let tokenizer = run.tokenizer(slices)
        let jobs = run.jobs(targets, slices: slices, alignment: tokenizer.alignment)
        return run.finish(jobs: jobs, tokenizer: tokenizer, outputLayers: recipe.slices != nil ? outputLayers : nil)
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

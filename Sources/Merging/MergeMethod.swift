import Tensors

/// The tensors one merge job works on, all Float32 with the same element count.
///
/// `base` is the base model's tensor when the method has one; `models` are the other inputs in
/// recipe order. Buffers are borrowed for the duration of `MergeMethod.merge` (they may point
/// straight into a mapped checkpoint) and must not be retained.
public struct MergeInputs {
    public let tensorName: String
    public let shape: Shape
    public let base: UnsafeBufferPointer<Float>?
    public let models: [UnsafeBufferPointer<Float>]
    /// The threads a method may use for this tensor (the plan's `threads`).
    public let loops: ParallelLoops

    public init(tensorName: String, shape: Shape, base: UnsafeBufferPointer<Float>?, models: [UnsafeBufferPointer<Float>],
                loops: ParallelLoops = .machine) {
        self.tensorName = tensorName
        self.shape = shape
        self.base = base
        self.models = models
        self.loops = loops
        precondition(models.allSatisfy { $0.count == shape.elementCount } && (base?.count ?? shape.elementCount) == shape.elementCount,
                     "merge inputs of \(tensorName) disagree with shape \(shape)")
    }

    public var count: Int { shape.elementCount }
}

/// How a method treats the recipe's `base_model`.
public enum BaseRole: Sendable {
    /// Works on task vectors `x_i - base`: the base is required.
    case required
    /// Uses task vectors when a base is given, raw weights otherwise.
    case optional
    /// Has no notion of a base: a `base_model` becomes one more input (mergekit's behaviour).
    case plainInput
}

/// One merge method: a name, the paper it comes from, typed parameters with defaults and one
/// pure function from input tensors to the output tensor.
///
/// `merge` writes every element of `output` (same element count as the inputs). It must not
/// depend on thread scheduling: randomised methods draw from generators derived from `seed`
/// (already specific to the output tensor), so a merge is reproducible with `--seed`.
public protocol MergeMethod: Sendable {
    /// The recipe name (`merge_method:`), e.g. `"ties"`.
    var name: String { get }
    /// Paper (or source) of the method.
    var reference: String { get }
    /// One line for `--help` and the model card.
    var summary: String { get }
    var baseRole: BaseRole { get }
    /// Declared parameters; the planner resolves exactly these and rejects unknown names.
    var parameters: [ParameterSpec] { get }
    var isRandomized: Bool { get }
    /// Accepted number of non-base inputs.
    var modelCount: ClosedRange<Int> { get }
    /// Extra Float32 elements per input element the method allocates (for memory estimates).
    var scratchPerElement: Double { get }
    /// Bytes of scratch a whole-tensor merge of `elementCount` elements and `modelCount` models
    /// allocates with these parameters (default: `scratchPerElement` Float32 values per input
    /// element).
    func wholeScratchBytes(elementCount: Int, modelCount: Int, parameters: ResolvedParameters) -> Int

    func merge(_ inputs: MergeInputs, _ parameters: ResolvedParameters, seed: UInt64,
               into output: UnsafeMutableBufferPointer<Float>) throws

    /// True when every output element depends only on the same element of the inputs (no
    /// reductions, ranks or randomness), so the executor may run the job in chunks.
    func isElementwise(_ parameters: ResolvedParameters) -> Bool

    /// True when `mergeBlocks` streams (reads the inputs block by block in one or more passes and
    /// writes the output piecewise) rather than needing whole tensors.
    var streamsBlocks: Bool { get }

    /// The block-wise form of `merge`: reads inputs through `source`, writes every output element
    /// through `output` in order. The default reads whole tensors and calls `merge`.
    func mergeBlocks(_ source: MergeBlockSource, _ parameters: ResolvedParameters, seed: UInt64, into output: MergeOutput) throws

    /// Scratch bytes of a streamed job beyond its input blocks and output pieces (for estimates).
    func streamScratchBytes(elementCount: Int, cols: Int, modelCount: Int, threads: Int) -> Int

    /// Why one model's resolved per-model parameters are unacceptable together, for constraints
    /// a single parameter's `ValueRange` cannot state (DELLA: density ± epsilon): the parameter
    /// blamed and why (text that reads after `parameter "name" for model M`). The planner calls
    /// this for every model of every job, so a bad recipe is refused before any tensor is read;
    /// `values` holds the model's resolved values, defaults included.
    func perModelParameterProblems(_ values: [String: ParameterValue]) -> [(parameter: String, problem: String)]
}

extension MergeMethod {
    public var isRandomized: Bool { false }
    public func isElementwise(_ parameters: ResolvedParameters) -> Bool { false }
    public var scratchPerElement: Double { 0 }
    public func wholeScratchBytes(elementCount: Int, modelCount: Int, parameters: ResolvedParameters) -> Int {
        Int(scratchPerElement * Double(4 * elementCount * modelCount))
    }
    public var streamsBlocks: Bool { false }
    public func streamScratchBytes(elementCount: Int, cols: Int, modelCount: Int, threads: Int) -> Int { 0 }
    public func perModelParameterProblems(_ values: [String: ParameterValue]) -> [(parameter: String, problem: String)] { [] }

    public func mergeBlocks(_ source: MergeBlockSource, _ parameters: ResolvedParameters, seed: UInt64, into output: MergeOutput) throws {
        let n = source.shape.elementCount
        try output.fill(n) { out in
            try source.withBlock(0..<n) { base, models in
                try merge(MergeInputs(tensorName: source.tensorName, shape: source.shape, base: base, models: models,
                                      loops: source.loops), parameters,
                          seed: seed, into: out)
            }
        }
    }

    /// Checks input counts and the base against the method's contract.
    public func checkInputs(modelCount n: Int, hasBase: Bool) throws {
        if baseRole == .required && !hasBase { throw MergeError.baseRequired(method: name) }
        guard modelCount.contains(n) else {
            let e = modelCount.upperBound == Int.max ? "at least \(modelCount.lowerBound) model(s) besides the base"
                : modelCount.lowerBound == modelCount.upperBound ? "exactly \(modelCount.lowerBound) model(s) besides the base"
                : "\(modelCount.lowerBound) to \(modelCount.upperBound) models besides the base"
            throw MergeError.wrongInputCount(method: name, expected: e, actual: n)
        }
    }

    /// Convenience for tests and small tensors: merges whole `Tensor`s.
    /// Parameters not given take their declared defaults.
    public func merge(base: Tensor?, models: [Tensor], parameters: ResolvedParameters = ResolvedParameters(),
                      seed: UInt64 = 0, tensorName: String = "tensor", threads: Int = ParallelLoops.machineThreads) throws -> Tensor {
        let loops = ParallelLoops(threads: threads)
        let shape = base?.shape ?? models.first?.shape ?? Shape([0])
        for m in models where m.shape != shape {
            throw MergeError.shapeMismatch(tensor: tensorName, model: "input", expected: shape, actual: m.shape)
        }
        try checkInputs(modelCount: models.count, hasBase: base != nil)
        let p = withDefaults(parameters, modelCount: models.count)
        var out = [Float](repeating: 0, count: shape.elementCount)
        try withBuffers(models) { bufs in
            if let base {
                try base.scalars.withUnsafeBufferPointer { b in
                    try out.withUnsafeMutableBufferPointer { o in
                        try merge(MergeInputs(tensorName: tensorName, shape: shape, base: b, models: bufs, loops: loops), p, seed: seed, into: o)
                    }
                }
            } else {
                try out.withUnsafeMutableBufferPointer { o in
                    try merge(MergeInputs(tensorName: tensorName, shape: shape, base: nil, models: bufs, loops: loops), p, seed: seed, into: o)
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// `parameters` completed with the declared defaults.
    public func withDefaults(_ parameters: ResolvedParameters, modelCount: Int) -> ResolvedParameters {
        var p = parameters
        while p.perModel.count < modelCount { p.perModel.append([:]) }
        for spec in self.parameters {
            guard let d = spec.defaultValue else { continue }
            switch spec.scope {
            case .global: if p.global[spec.name] == nil { p.global[spec.name] = d }
            case .perModel: for i in p.perModel.indices where p.perModel[i][spec.name] == nil { p.perModel[i][spec.name] = d }
            }
        }
        return p
    }
}

/// Calls `body` with buffers of every tensor (nested scopes, no copies).
func withBuffers<R>(_ tensors: [Tensor], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) throws -> R {
    func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) throws -> R {
        if i == tensors.count { return try body(acc) }
        return try tensors[i].scalars.withUnsafeBufferPointer { try go(i + 1, acc + [$0]) }
    }
    return try go(0, [])
}

/// `passthrough`: copies one input tensor, optionally multiplied by `scale`; with `slices` it
/// stacks layers from several models ("frankenmerges").
public struct PassthroughMerge: MergeMethod {
    public struct PerModel { public var scale: Double }
    public init() {}
    public let name = "passthrough"
    public let reference = "mergekit passthrough (layer stacking, e.g. Kim et al. 2023, SOLAR, arXiv:2312.15166)"
    public let summary = "copy one input tensor (optionally scaled); use with slices to stack layers"
    public let baseRole = BaseRole.plainInput
    public let modelCount = 1...1
    public var parameters: [ParameterSpec] { [.number("scale", .perModel, default: 1, "multiplier of the tensor")] }

    public func isElementwise(_ parameters: ResolvedParameters) -> Bool { true }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        let s = PerModel(scale: try p.numbers("scale", fallback: 1)[0])
        if s.scale == 1 {
            out.baseAddress!.update(from: inputs.models[0].baseAddress!, count: inputs.count)
        } else {
            weightedSum(inputs.models, [s.scale], base: nil, into: out, loops: inputs.loops)
        }
    }
}

import Checkpoints
import Foundation
import Merging
import Tensors
import XCTest
@testable import Transformer

/// "Bad numbers never pass silently", on a NaN fixture made here from a committed one
/// (fixtures/merge/ft-a, the GGUF and merge-adapter fixtures): every writer fails with a typed
/// error naming the tensor and the input, leaves nothing at the output path (and no staging
/// entry), and writes the values with `allowNonFinite`; `eval`/`generate` refuse the model.
final class NonFiniteTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let merge = root.appendingPathComponent("fixtures/merge")
    /// The poisoned tensor: element 3 is NaN, element 7 is +Inf.
    static let poisoned = "model.layers.0.mlp.down_proj.weight"
    private let fm = FileManager.default

    private func tmp() throws -> URL {
        let d = fm.temporaryDirectory.appendingPathComponent("ws-nonfinite-\(UUID().uuidString)")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// The NaN fixture: a copy of the model folder `source` in which `tensor` holds NaN at
    /// element 3 and +Inf at element 7; every other tensor and file byte for byte.
    static func nanCopy(of source: URL, tensor: String = poisoned, to out: URL) throws {
        let fm = FileManager.default
        try fm.copyItem(at: source, to: out)
        let file = out.appendingPathComponent("model.safetensors")
        let c = try Checkpoint(path: source.appendingPathComponent("model.safetensors").path)
        let names = c.tensorNames.sorted()
        let entries = names.map { TensorEntry(name: $0, dtype: c.info($0)!.dtype, shape: c.info($0)!.shape) }
        let staging = out.appendingPathComponent("staging")
        try fm.createDirectory(at: staging, withIntermediateDirectories: false)
        let w = try CheckpointWriter(directory: staging, entries: entries, metadata: c.metadata, allowNonFinite: true)
        for n in names {
            if n == tensor {
                var t = try c.tensor(n)
                t.scalars[3] = .nan
                t.scalars[7] = .infinity
                try w.write(n, t)
            } else {
                try c.withRawBytes(n) { try w.write(n, rawBytes: $0) }
            }
        }
        try w.finish()
        try fm.removeItem(at: file)
        try fm.moveItem(at: staging.appendingPathComponent("model.safetensors"), to: file)
        try fm.removeItem(at: staging)
    }

    /// Asserts `body` throws `CheckpointError.nonFinite` for `tensor` with 2 bad values and an
    /// input containing `input`, and that nothing was left at `output` or beside it.
    func assertRefused(_ output: URL, tensor: String = poisoned, input: String, count: Int = 2, _ body: () throws -> Void,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard case let .nonFinite(_, t, c, _, inp)? = e as? CheckpointError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(t, tensor, file: file, line: line)
            XCTAssertEqual(c, count, file: file, line: line)
            XCTAssertTrue(inp?.contains(input) == true, "input \(inp ?? "nil") does not name \(input)", file: file, line: line)
            XCTAssertTrue("\(e)".contains("--allow-nonfinite"), file: file, line: line)
        }
        XCTAssertFalse(fm.fileExists(atPath: output.path), "output left at \(output.path)", file: file, line: line)
        let parent = output.deletingLastPathComponent()
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: parent.path).filter { $0.hasPrefix(".\(output.lastPathComponent)") }, [],
                       "staging or lock left", file: file, line: line)
    }

    /// The values of `tensor` in a written folder or file, decoded to Float32.
    func values(_ out: URL, _ tensor: String = poisoned) throws -> [Float] {
        try ModelReference.open(out.path).tensor(tensor).scalars
    }

    func linearPlan(_ models: [String], weights: [Double], normalize: Bool = true, outDType: DType? = nil) throws -> MergePlan {
        let recipe = Recipe(mergeMethod: "linear", models: zip(models, weights).map { p, w in
            RecipeSource(model: p, parameters: ParameterTable(["weight": .value(.number(w))]))
        }, parameters: ParameterTable(["normalize": .value(.bool(normalize))]), outDType: outDType)
        return try MergePlanner.plan(recipe)
    }

    func testMergeAndComposeRefuseNonFiniteOutputs() throws {
        let dir = try tmp()
        let nan = dir.appendingPathComponent("nan-ft")
        try Self.nanCopy(of: Self.merge.appendingPathComponent("ft-a"), to: nan)
        let ftB = Self.merge.appendingPathComponent("ft-b").path
        let quiet = ExecutionOptions(hashInputs: false, progress: false)
        for dtype in [DType.f32, .bf16, .f16] {
            let out = dir.appendingPathComponent("merged-\(dtype.rawValue)")
            let plan = try linearPlan([nan.path, ftB], weights: [0.5, 0.5], outDType: dtype)
            try assertRefused(out, input: nan.path) { _ = try MergeExecutor.run(plan, to: out, options: quiet) }
            var allow = quiet
            allow.allowNonFinite = true
            _ = try MergeExecutor.run(plan, to: out, options: allow)
            let v = try values(out)
            XCTAssertTrue(v[3].isNaN, "\(dtype)")
            XCTAssertEqual(v[7], .infinity, "\(dtype)")
            XCTAssertEqual(v.filter { !$0.isFinite }.count, 2, "\(dtype)")
        }
        // compose (task arithmetic from an expression with a leading minus), same guard.
        let out = dir.appendingPathComponent("composed")
        let plan = try TaskVectors.composePlan(base: Self.merge.appendingPathComponent("base").path, expression: "-0.5*bad + b",
                                               models: ["bad": nan.path, "b": ftB])
        try assertRefused(out, input: nan.path) { _ = try MergeExecutor.run(plan, to: out, options: quiet) }
    }

    /// Finite inputs whose merge overflows F16 (above 65504): the writer counts the encoded
    /// values, and the error says the merge made them.
    func testOverflowInTheMergeIsNamedAsSuch() throws {
        let dir = try tmp()
        let out = dir.appendingPathComponent("big")
        let a = Self.merge.appendingPathComponent("ft-a").path, b = Self.merge.appendingPathComponent("ft-b").path
        let plan = try linearPlan([a, b], weights: [1e6, 1e6], normalize: false, outDType: .f16)
        XCTAssertThrowsError(try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))) { e in
            guard case let .nonFinite(_, _, c, n, inp)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertGreaterThan(c, 0)
            XCTAssertLessThanOrEqual(c, n)
            XCTAssertEqual(inp, "the merge (every input of this tensor is finite)")
        }
        XCTAssertFalse(fm.fileExists(atPath: out.path))
    }

    func testMergeStatsCountsTheSameValues() throws {
        let dir = try tmp()
        let nan = dir.appendingPathComponent("nan-ft")
        try Self.nanCopy(of: Self.merge.appendingPathComponent("ft-a"), to: nan)
        let plan = try linearPlan([nan.path, Self.merge.appendingPathComponent("ft-b").path], weights: [1, 1])
        let findings = try ValueScan.scan(plan)
        XCTAssertEqual(findings.map(\.tensor), [Self.poisoned])
        XCTAssertEqual(findings.map(\.nonFinite), [2])
    }

    func testConvertAndMergeAdapterRefuseNonFiniteTensors() throws {
        let dir = try tmp()
        let nan = dir.appendingPathComponent("nan-ft")
        try Self.nanCopy(of: Self.merge.appendingPathComponent("ft-a"), to: nan)
        // Folder (dtype change: the encode loop), file (same dtype: the raw copy loop), sharded.
        let cases: [(String, CheckpointConverter.Options)] = [("conv-bf16", .init(dtype: .bf16)), ("conv-same.safetensors", .init()),
                                                             ("conv-f16-sharded", .init(dtype: .f16, maxShardBytes: 100_000))]
        for (name, options) in cases {
            let out = dir.appendingPathComponent(name)
            try assertRefused(out, input: nan.path) { _ = try CheckpointConverter.convert(input: nan.path, output: out.path, options: options) }
            var allow = options
            allow.allowNonFinite = true
            _ = try CheckpointConverter.convert(input: nan.path, output: out.path, options: allow)
            let v = try values(out)
            XCTAssertTrue(v[3].isNaN && v[7] == .infinity, name)
        }

        // merge-adapter with a poisoned base: the adapted q_proj of layer 0.
        let base = dir.appendingPathComponent("nan-base")
        let q = "model.layers.0.self_attn.q_proj.weight"
        try Self.nanCopy(of: MergeAdapterTests.dir.appendingPathComponent("base"), tensor: q, to: base)
        let adapter = MergeAdapterTests.dir.appendingPathComponent("adapter").path
        let out = dir.appendingPathComponent("baked")
        try assertRefused(out, tensor: q, input: base.path) {
            _ = try CheckpointConverter.mergeAdapter(base: base.path, adapter: adapter, output: out.path)
        }
        _ = try CheckpointConverter.mergeAdapter(base: base.path, adapter: adapter, output: out.path, allowNonFinite: true)
        XCTAssertEqual(try values(out, q).filter { !$0.isFinite }.count, 2)
    }

    func testConvertGGUFRefusesNonFiniteTensors() throws {
        let dir = try tmp()
        let gguf = dir.appendingPathComponent("nan.gguf")
        try fm.copyItem(at: ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf"), to: gguf)
        let g0 = try GGUFFile(url: gguf)
        let t = try XCTUnwrap(g0.tensors.first { $0.type == .f32 && $0.name.hasSuffix("attn_norm.weight") })
        let h = try FileHandle(forWritingTo: gguf)
        try h.seek(toOffset: UInt64(g0.dataOffset + t.offset + 4 * 2))
        try h.write(contentsOf: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) })
        try h.close()
        let hf = try XCTUnwrap(GGUFNaming.huggingFaceName(t.name))
        let out = dir.appendingPathComponent("converted")
        try assertRefused(out, tensor: hf, input: t.name, count: 1) { _ = try GGUFConverter.convert(gguf: try GGUFFile(url: gguf), to: out) }
        _ = try GGUFConverter.convert(gguf: try GGUFFile(url: gguf), to: out, allowNonFinite: true)
        XCTAssertTrue(try values(out, hf)[2].isNaN)
    }

    /// Loading counts the bad values while copying; eval, generate and edit refuse the model,
    /// and its folder writer (edit, finetune) refuses to save it.
    func testModelWithNonFiniteWeights() throws {
        let dir = try tmp()
        let nan = dir.appendingPathComponent("nan-ft")
        try Self.nanCopy(of: Self.merge.appendingPathComponent("ft-a"), to: nan)
        let loaded = try PretrainedModel(path: nan.path)
        XCTAssertEqual(loaded.model.nonFiniteWeights.map(\.tensor), [Self.poisoned])
        XCTAssertEqual(loaded.model.nonFiniteWeights.map(\.count), [2])
        XCTAssertThrowsError(try loaded.model.requireFiniteWeights()) { e in
            XCTAssertEqual(e as? ModelError, .nonFinite(source: nan.path, tensor: Self.poisoned, count: 2, elements: 64 * 128))
        }
        XCTAssertNoThrow(try PretrainedModel(path: Self.merge.appendingPathComponent("ft-a").path).model.requireFiniteWeights())

        // generate: non-finite logits are an error, not an empty completion.
        let gen = TextGenerator(model: loaded.model, tokenizer: loaded.tokenizer)
        XCTAssertThrowsError(try gen.generate(prompt: "a b", maxTokens: 4)) { e in
            guard case let .nonFinite(_, t, c, n)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertEqual(t, "logits")
            XCTAssertEqual(c, n)  // a NaN weight in the MLP reaches every logit
            XCTAssertEqual(n, loaded.model.config.vocabSize)
        }
        // eval: the mean NLL of non-finite logits is a typed error.
        let result = try Evaluator(model: loaded.model, tokenizer: loaded.tokenizer).evaluate([PromptCompletion(prompt: "a", completion: " b")])
        XCTAssertTrue(result.meanNLL.isNaN)
        XCTAssertThrowsError(try result.checkedFinite(source: nan.path)) { e in
            guard case let .nonFiniteScore(s, w, _)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertEqual(s, nan.path)
            XCTAssertEqual(w, "mean NLL")
        }
        // edit / finetune's writer.
        let out = dir.appendingPathComponent("edited")
        try assertRefused(out, input: nan.path) { try loaded.model.save(to: out, sideFilesFrom: nan, inputs: [nan]) }
        try loaded.model.save(to: out, sideFilesFrom: nan, inputs: [nan], allowNonFinite: true)
        XCTAssertEqual(try values(out).filter { !$0.isFinite }.count, 2)
    }
}

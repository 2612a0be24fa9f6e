import Checkpoints
import Foundation
import Merging
import Tensors
import XCTest
@testable import Transformer

/// Every kind of model reference through what `inspect` (InspectReport), `eval` (PretrainedModel +
/// Evaluator) and `merge` (MergePlanner + MergeExecutor) run, on fixtures/family and the GGUF
/// fixture of the llama model.
final class ModelReferenceTests: XCTestCase {
    static let family = SoupTests.family
    var base: String { Self.family.appendingPathComponent("base").path }
    var full: String { Self.family.appendingPathComponent("capital-full").path }
    var lora: String { Self.family.appendingPathComponent("capital-lora").path }
    var heldOut: URL { Self.family.appendingPathComponent("data/capital-heldout.jsonl") }
    static let gguf = ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf").path
    static let llama = ModelParityTests.dir.appendingPathComponent("llama").path

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: base + "/model.safetensors") else { throw XCTSkip("fixtures/family is missing") }
    }

    func tmp() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ws-refs-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// Mean NLL on the capital held-out set, as `eval` computes it.
    func evalNLL(_ ref: String, base: String? = nil) throws -> Double {
        let m = try PretrainedModel(path: ref, base: base)
        return try Evaluator(model: m.model, tokenizer: m.tokenizer).evaluate(try PromptCompletion.readJSONL(heldOut)).meanNLL
    }

    /// A linear merge of `refs` (uniform weights), as `merge --method linear` runs it; returns the output checkpoint.
    func linearMerge(_ refs: [String], into dir: URL) throws -> Checkpoint {
        let out = dir.appendingPathComponent("merged-\(UUID().uuidString)")
        let recipe = Recipe(mergeMethod: "linear", models: refs.map {
            RecipeSource(model: $0, parameters: ParameterTable(["weight": .value(.number(1))]))
        })
        let plan = try MergePlanner.plan(recipe)
        XCTAssertEqual(plan.problems, [])
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        return try Checkpoint(path: out.path)
    }

    func maxDiff(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    // MARK: folder, sharded, file

    func testFolderShardedAndFileGiveTheSameModel() throws {
        let dir = try tmp()
        let sharded = dir.appendingPathComponent("sharded")
        var opts = CheckpointConverter.Options()
        opts.maxShardBytes = 1_000_000
        _ = try CheckpointConverter.convert(input: base, output: sharded.path, options: opts)
        let s = try ModelReference.open(sharded.path)
        XCTAssertGreaterThan(s.shards.count, 1)
        XCTAssertEqual(try InspectReport(checkpoint: s, stats: false).totalParameters, 803_968)
        let file = base + "/model.safetensors"
        XCTAssertEqual(try InspectReport(checkpoint: ModelReference.open(file), stats: false).totalParameters, 803_968)
        let nll = try evalNLL(base)
        XCTAssertEqual(nll, 3.2671, accuracy: 5e-4)  // fixtures/family/README.md: 3.27 before fine-tuning
        XCTAssertEqual(try evalNLL(sharded.path), nll)
        XCTAssertEqual(try evalNLL(file), nll)
        let merged = try linearMerge([base, sharded.path, file], into: dir)
        let b = try Checkpoint(path: base)
        for n in b.tensorNames { XCTAssertLessThan(maxDiff(try merged.tensor(n), try b.tensor(n)), 1e-6, n) }
    }

    // MARK: GGUF

    /// The dequantised GGUF equals the Hugging Face tensors it was written from, loads to the
    /// transformers logits, and merges with the folder it came from.
    func testGGUFIsReadAsAHuggingFaceCheckpoint() throws {
        let g = try ModelReference.open(Self.gguf)
        XCTAssertEqual(g.referenceKind, .gguf)
        let hf = try Checkpoint(path: Self.llama)
        XCTAssertEqual(g.tensorNames, hf.tensorNames)
        for n in hf.tensorNames { XCTAssertEqual(try g.tensor(n), try hf.tensor(n), n) }
        let report = try InspectReport(checkpoint: g, stats: true)
        XCTAssertEqual(report.totalParameters, try InspectReport(checkpoint: hf, stats: false).totalParameters)
        XCTAssertEqual(report.referenceKind, "gguf")
        // The virtual path (config.json rebuilt from the metadata) gives transformers' logits.
        let model = try TransformerModel(checkpoint: g)
        let (ids, want) = try ModelParityTests.expected("llama")
        XCTAssertLessThan(ModelParityTests.maxAbsDiff(try model.forward(ids).scalars, want.scalars), 1e-4)
        // eval/generate read a GGUF file natively (quantised matrices kept packed): same logits.
        let native = try TransformerModel.load(path: Self.gguf)
        XCTAssertLessThan(ModelParityTests.maxAbsDiff(try native.forward(ids).scalars, want.scalars), 1e-4)
        let merged = try linearMerge([Self.gguf, Self.llama], into: try tmp())
        for n in hf.tensorNames { XCTAssertLessThan(maxDiff(try merged.tensor(n), try hf.tensor(n)), 1e-6, n) }
        // A file that is a GGUF whatever its name is not read as safetensors.
        let renamed = try tmp().appendingPathComponent("model.bin.weights")
        try FileManager.default.copyItem(atPath: Self.gguf, toPath: renamed.path)
        XCTAssertEqual(try ModelReference.open(renamed.path).referenceKind, .gguf)
    }

    // MARK: adapters

    /// W' = W + (alpha / r) B A, computed here from the factors.
    func expectedMerged(_ name: String) throws -> Tensor {
        let a = try LoRAAdapter(path: lora)
        var w = try Checkpoint(path: base).tensor(name)
        let m = try XCTUnwrap(a.module(forBaseTensor: name))
        let (fa, fb) = try a.factors(m)
        let r = fa.shape[0], n = fa.shape[1]
        for i in 0..<fb.shape[0] {
            for j in 0..<n {
                var s: Float = 0
                for k in 0..<r { s += fb.scalars[i * r + k] * fa.scalars[k * n + j] }
                w.scalars[i * n + j] += 2 * s  // alpha 16 / r 8
            }
        }
        return w
    }

    func testAdapterMergedOnTheFlyEverywhere() throws {
        let explicit = "\(base)+\(lora)"
        // base_model_name_or_path is "fixtures/family/base": a copy of the adapter with an absolute base.
        let dir = try tmp()
        let copy = dir.appendingPathComponent("adapter")
        try FileManager.default.copyItem(atPath: lora, toPath: copy.path)
        var config = try String(contentsOf: copy.appendingPathComponent("adapter_config.json"), encoding: .utf8)
        config = config.replacingOccurrences(of: "\"fixtures/family/base\"", with: "\"\(base)\"")
        try config.write(to: copy.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)

        for ref in [explicit, copy.path] {
            let c = try ModelReference.open(ref)
            XCTAssertEqual(c.referenceKind, .adapterOnBase, ref)
            let q = "model.layers.2.self_attn.q_proj.weight"
            XCTAssertLessThan(maxDiff(try c.tensor(q), try expectedMerged(q)), 1e-6)
            XCTAssertEqual(try c.tensor("model.norm.weight"), try Checkpoint(path: base).tensor("model.norm.weight"))
            XCTAssertEqual(try InspectReport(checkpoint: c, stats: false).totalParameters, 803_968)
        }
        // --base for an adapter given alone, and the held-out NLL of fixtures/family/README.md (0.70).
        let nll = try evalNLL(copy.path)
        XCTAssertEqual(nll, 0.7039, accuracy: 5e-4)
        XCTAssertEqual(try evalNLL(lora, base: base), nll)
        XCTAssertEqual(try evalNLL(explicit), nll)
        // A merge with the adapter as an input: linear(adapter, adapter) = the merged adapter.
        let merged = try linearMerge([explicit, copy.path], into: dir)
        let q = "model.layers.0.mlp.down_proj.weight"
        XCTAssertLessThan(maxDiff(try merged.tensor(q), try expectedMerged(q)), 1e-6)
        // A recipe's `model: base+lora` parses and plans.
        let yml = dir.appendingPathComponent("r.yml")
        try "merge_method: linear\nmodels:\n  - model: \(explicit)\n    parameters: {weight: 0.5}\n  - model: \(full)\n    parameters: {weight: 0.5}\n"
            .write(to: yml, atomically: true, encoding: .utf8)
        let plan = try MergePlanner.plan(try RecipeParser.parse(file: yml.path))
        XCTAssertEqual(plan.problems, [])
        XCTAssertEqual(plan.jobs.count, 38)
        // An adapter without a resolvable base says so.
        try config.replacingOccurrences(of: "\"\(base)\"", with: "\"acme/absent\"")
            .write(to: copy.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelReference.open(copy.path, environment: ["HF_HUB_CACHE": dir.path])) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(copy.path): its base \"acme/absent\" (base_model_name_or_path in adapter_config.json) cannot be opened"), "\(e)")
        }
        XCTAssertNoThrow(try ModelReference.open(copy.path, base: base))
    }

    // MARK: task vectors and sparse deltas

    func testTaskVectorIsRefusedAloneAndAddedToItsBase() throws {
        let dir = try tmp()
        let tv = dir.appendingPathComponent("tv")
        var options = ExecutionOptions(hashInputs: false, progress: false)
        options.metadata = [TaskVectors.kindKey: TaskVectors.kindValue]  // as `task-vector extract` writes it
        _ = try MergeExecutor.run(try TaskVectors.extractPlan(base: base, tuned: full), to: tv, options: options)
        // Alone: typed error in eval and merge (it used to give perplexity 512); inspect shows it as stored.
        XCTAssertThrowsError(try evalNLL(tv.path)) { e in
            XCTAssertEqual(e as? ModelReferenceError, .deltaWithoutBase(reference: tv.path, format: "task vector"))
        }
        XCTAssertThrowsError(try MergePlanner.plan(Recipe(mergeMethod: "linear", models: [RecipeSource(model: tv.path), RecipeSource(model: full)]))) { e in
            XCTAssertTrue("\(e)".contains("is a task vector, not a model"), "\(e)")
        }
        XCTAssertEqual(try InspectReport(checkpoint: ModelReference.open(tv.path, allowDeltas: true), stats: false).referenceKind, "task_vector")
        // With its base it is the fine-tune again.
        let onBase = "\(base)+\(tv.path)"
        let tuned = try Checkpoint(path: full)
        let c = try ModelReference.open(onBase)
        XCTAssertEqual(c.referenceKind, .deltaOnBase)
        for n in tuned.tensorNames { XCTAssertLessThan(maxDiff(try c.tensor(n), try tuned.tensor(n)), 1e-6, n) }
        XCTAssertEqual(try evalNLL(onBase), try evalNLL(full), accuracy: 1e-5)
        XCTAssertEqual(try evalNLL(tv.path, base: base), try evalNLL(full), accuracy: 1e-5)
        let merged = try linearMerge([onBase, full], into: dir)
        for n in tuned.tensorNames { XCTAssertLessThan(maxDiff(try merged.tensor(n), try tuned.tensor(n)), 1e-6, n) }
    }

    func testSparseDeltaIsRefusedAloneAndAddedToItsBase() throws {
        let dir = try tmp()
        let b = try Checkpoint(path: base), t = try Checkpoint(path: full)
        var deltas: [SparseDeltaTensor] = []
        for n in b.tensorNames {
            var d = try t.tensor(n)
            let w = try b.tensor(n)
            for i in d.scalars.indices { d.scalars[i] -= w.scalars[i] }
            deltas.append(SparseDelta.sparsify(name: n, diff: d, threshold: 1e-3))
        }
        let file = dir.appendingPathComponent("delta.safetensors")
        try SparseDeltaWriter.write(deltas, to: file)
        XCTAssertThrowsError(try evalNLL(file.path)) { e in
            XCTAssertEqual(e as? ModelReferenceError, .deltaWithoutBase(reference: file.path, format: "sparse delta"))
        }
        let onBase = "\(base)+\(file.path)"
        let c = try ModelReference.open(onBase)
        XCTAssertEqual(c.referenceKind, .deltaOnBase)
        // Entries under the threshold are the base's; the others the fine-tune's.
        for n in b.tensorNames {
            let got = try c.tensor(n), w = try b.tensor(n), want = try t.tensor(n)
            for i in got.scalars.indices {
                let expected = abs(want.scalars[i] - w.scalars[i]) > 1e-3 ? want.scalars[i] : w.scalars[i]
                XCTAssertEqual(got.scalars[i], expected, accuracy: 1e-6)
            }
        }
        XCTAssertEqual(try InspectReport(checkpoint: c, stats: false).totalParameters, 803_968)
        let nll = try evalNLL(onBase)
        XCTAssertLessThan(nll, 1.0)  // close to the fine-tune's 0.756, far from the base's 3.27
        let merged = try linearMerge([onBase, onBase], into: dir)
        let n = "model.layers.1.self_attn.v_proj.weight"
        XCTAssertLessThan(maxDiff(try merged.tensor(n), try c.tensor(n)), 1e-6)
    }

    // MARK: Hugging Face cache

    func makeHubCache() throws -> URL {
        let cache = try tmp().appendingPathComponent("hub")
        let repo = cache.appendingPathComponent("models--acme--tiny-llama")
        let snap = repo.appendingPathComponent("snapshots/0123456789abcdef0123456789abcdef01234567")
        try FileManager.default.createDirectory(at: snap, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try "0123456789abcdef0123456789abcdef01234567".write(to: repo.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        // The hub stores blobs and links the snapshot's files to them.
        let blobs = repo.appendingPathComponent("blobs")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: base + "/" + f, toPath: blobs.appendingPathComponent(f + ".blob").path)
            try FileManager.default.createSymbolicLink(atPath: snap.appendingPathComponent(f).path, withDestinationPath: "../../blobs/\(f).blob")
        }
        return cache
    }

    func testHubIDFoundOfflineInTheCache() throws {
        let cache = try makeHubCache()
        let env = ["HF_HUB_CACHE": cache.path]
        let c = try ModelReference.open("acme/tiny-llama", environment: env)
        XCTAssertEqual(c.tensorNames, try Checkpoint(path: base).tensorNames)
        XCTAssertNotNil(try ModelReference.open("acme/tiny-llama@0123456789abcdef0123456789abcdef01234567", environment: env))
        XCTAssertEqual(try InspectReport(checkpoint: c, stats: false).totalParameters, 803_968)
        // HF_HOME/hub is the default layout too.
        XCTAssertNoThrow(try ModelReference.open("acme/tiny-llama", environment: ["HF_HOME": cache.deletingLastPathComponent().path]))
        XCTAssertThrowsError(try ModelReference.open("acme/tiny-llama@v2", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("no snapshot for revision \"v2\" (refs: main)"), "\(e)")
        }
        XCTAssertThrowsError(try ModelReference.open("acme/absent", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("models--acme--absent is not there"), "\(e)")
            XCTAssertTrue("\(e)".contains(cache.path), "\(e)")
        }
        // eval and merge read the process environment.
        setenv("HF_HUB_CACHE", cache.path, 1)
        defer { unsetenv("HF_HUB_CACHE") }
        XCTAssertEqual(try evalNLL("acme/tiny-llama"), try evalNLL(base))
        XCTAssertEqual(try evalNLL("acme/tiny-llama+\(lora)"), 0.7039, accuracy: 5e-4)
        let merged = try linearMerge(["acme/tiny-llama", base], into: try tmp())
        XCTAssertEqual(try merged.tensor("model.norm.weight"), try Checkpoint(path: base).tensor("model.norm.weight"))
    }
}

import CMergeKernels
import Checkpoints
import Foundation
import XCTest
@testable import Merging
import Tensors

/// Plans and runs merges of small checkpoints written into a temporary folder.
final class MergeEndToEndTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A 2-layer toy model; `offset` shifts every value; `vocab` sets the embedding rows.
    @discardableResult
    func makeModel(_ name: String, offset: Float, vocab: Int = 8, tied: Bool = false, dtype: DType = .f32, layers: Int = 2) throws -> String {
        let d = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        var tensors: [(String, Tensor)] = [("model.embed_tokens.weight", Tensor(shape: [vocab, 4], scalars: (0..<(vocab * 4)).map { Float($0) * 0.1 + offset }))]
        for l in 0..<layers {
            tensors.append(("model.layers.\(l).mlp.up_proj.weight", Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0 + 100 * l) * 0.01 + offset })))
            tensors.append(("model.layers.\(l).input_layernorm.weight", Tensor(shape: [4], scalars: [1, 1, 1, 1].map { $0 + offset })))
        }
        tensors.append(("model.norm.weight", Tensor(shape: [4], scalars: [1, 2, 3, 4].map { $0 + offset })))
        if !tied { tensors.append(("lm_head.weight", Tensor(shape: [vocab, 4], scalars: (0..<(vocab * 4)).map { -Float($0) * 0.1 + offset }))) }
        let w = try SafetensorsWriter(url: d.appendingPathComponent("model.safetensors"),
                                      entries: tensors.map { TensorEntry(name: $0.0, dtype: dtype, shape: $0.1.shape) },
                                      allowNonFinite: true)  // `offset: .nan` makes a NaN input on purpose
        for (n, t) in tensors { try w.write(n, t) }
        try w.finish()
        try Data("{\"model_type\": \"llama\", \"num_hidden_layers\": \(layers), \"vocab_size\": \(vocab), \"torch_dtype\": \"float32\"}".utf8)
            .write(to: d.appendingPathComponent("config.json"))
        try Data("{\"tok\": \"\(name)\"}".utf8).write(to: d.appendingPathComponent("tokenizer.json"))
        return d.path
    }

    func recipe(_ yaml: String) throws -> Recipe { try RecipeParser.parse(yaml) }

    func testLinearMergeWritesCompleteFolder() throws {
        let a = try makeModel("a", offset: 0), b = try makeModel("b", offset: 1)
        let plan = try MergePlanner.plan(recipe("merge_method: linear\nmodels:\n  - model: \(a)\n    parameters: {weight: 3}\n  - model: \(b)\n    parameters: {weight: 1}\nout_dtype: bfloat16\n"))
        XCTAssertEqual(plan.problems, [])
        XCTAssertEqual(plan.jobs.count, 7)
        XCTAssertEqual(plan.jobs.first?.output, "model.embed_tokens.weight")
        XCTAssertEqual(plan.jobs.last?.output, "model.norm.weight")
        let out = dir.appendingPathComponent("out")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(maxShardBytes: 100, progress: false))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path + ".partial"))
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path)
        for f in ["config.json", "tokenizer.json", "README.md", "merge_recipe.yml", "model.safetensors.index.json"] { XCTAssertTrue(files.contains(f), f) }
        let merged = try Checkpoint(path: out.path)
        XCTAssertGreaterThan(merged.shards.count, 1)
        let norm = try merged.tensor("model.norm.weight")
        XCTAssertEqual(merged.info("model.norm.weight")?.dtype, .bf16)
        XCTAssertEqual(norm.scalars, [1.25, 2.25, 3.25, 4.25])
        let config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("\"torch_dtype\": \"bfloat16\""), config)
        let card = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(card.contains(try SHA256.hexDigest(ofFile: a + "/model.safetensors")))
        XCTAssertThrowsError(try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false)))
    }

    func testTaskArithmeticWithGradientAndTiedHead() throws {
        let base = try makeModel("base", offset: 0), a = try makeModel("a", offset: 1, tied: true)
        let plan = try MergePlanner.plan(recipe("""
            merge_method: task_arithmetic
            base_model: \(base)
            models:
              - model: \(a)
                parameters: {weight: [{filter: up_proj, value: [0, 1]}, {value: 0.5}]}
            """))
        XCTAssertEqual(plan.problems, [])
        XCTAssertTrue(plan.notes.contains { $0.contains("tied embeddings") }, "\(plan.notes)")
        let byName = Dictionary(uniqueKeysWithValues: plan.jobs.map { ($0.output, $0) })
        XCTAssertEqual(byName["model.layers.0.mlp.up_proj.weight"]?.parameters.perModel[0]["weight"], .number(0))
        XCTAssertEqual(byName["model.layers.1.mlp.up_proj.weight"]?.parameters.perModel[0]["weight"], .number(1))
        XCTAssertEqual(byName["lm_head.weight"]?.models[0].tensor, "model.embed_tokens.weight")
        let out = dir.appendingPathComponent("ta")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        let m = try Checkpoint(path: out.path)
        XCTAssertEqual(try m.tensor("model.norm.weight").scalars, [1.5, 2.5, 3.5, 4.5])
        XCTAssertEqual(try m.tensor("model.layers.0.mlp.up_proj.weight"), try Checkpoint(path: base).tensor("model.layers.0.mlp.up_proj.weight"))
    }

    func testPreflightReportsAllProblemsTogether() throws {
        let base = try makeModel("base", offset: 0)
        let big = try makeModel("big", offset: 1, vocab: 10)
        let bf = try makeModel("bf", offset: 2, dtype: .bf16)
        let r = try recipe("merge_method: ties\nbase_model: \(base)\nmodels:\n  - model: \(big)\n    parameters: {weight: 1}\n  - model: \(bf)\n")
        let plan = try MergePlanner.plan(r)
        XCTAssertEqual(plan.problems.count, 3, plan.problems.joined(separator: "\n"))
        XCTAssertTrue(plan.problems.contains { $0.contains("vocabulary sizes differ for \"model.embed_tokens.weight\"") })
        XCTAssertTrue(plan.problems.contains { $0.contains("vocabulary sizes differ for \"lm_head.weight\"") })
        XCTAssertTrue(plan.problems.contains { $0.contains("missing required parameter \"weight\"") })
        XCTAssertThrowsError(try plan.checked())

        // Choosing the base's vocabulary: rows the small model lacks come from the base.
        let r2 = try recipe("merge_method: task_arithmetic\nbase_model: \(big)\nmodels:\n  - model: \(base)\n    parameters: {weight: 1}\n")
        let plan2 = try MergePlanner.plan(r2, options: PlanOptions(vocabulary: .base))
        XCTAssertEqual(plan2.problems, [])
        let out = dir.appendingPathComponent("vocab")
        _ = try MergeExecutor.run(plan2, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        let e = try Checkpoint(path: out.path).tensor("model.embed_tokens.weight")
        XCTAssertEqual(e.shape, [10, 4])
        // rows 0..<8: the small model's (offset 0), rows 8, 9: the base's (offset 1), unchanged
        XCTAssertEqual(e.scalars[0], 0, accuracy: 1e-6)
        XCTAssertEqual(e.scalars[8 * 4], 3.2 + 1, accuracy: 1e-5)
        let cfg = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        XCTAssertTrue(cfg.contains("\"vocab_size\": 10"))
        let trunc = try MergePlanner.plan(r2, options: PlanOptions(vocabulary: .truncate))
        XCTAssertEqual(trunc.jobs.first?.shape, [8, 4])
    }

    func testMissingTensorsAndShapeMismatch() throws {
        let base = try makeModel("base", offset: 0)
        let short = try makeModel("short", offset: 1, layers: 1)
        let plan = try MergePlanner.plan(recipe("merge_method: linear\nmodels:\n  - model: \(base)\n    parameters: {weight: 1}\n  - model: \(short)\n    parameters: {weight: 1}\n"))
        XCTAssertTrue(plan.problems.contains { $0.contains("has 1 layers") } || plan.problems.contains { $0.contains("lacks") }, "\(plan.problems)")
    }

    func testPassthroughSlicesStackLayers() throws {
        let a = try makeModel("a", offset: 0), b = try makeModel("b", offset: 1)
        let plan = try MergePlanner.plan(recipe("""
            merge_method: passthrough
            slices:
              - sources: [{model: \(a), layer_range: [0, 2]}]
              - sources: [{model: \(b), layer_range: [1, 2]}]
            """))
        XCTAssertEqual(plan.problems, [])
        XCTAssertEqual(plan.outputLayerCount, 3)
        let job = try XCTUnwrap(plan.jobs.first { $0.output == "model.layers.2.mlp.up_proj.weight" })
        XCTAssertEqual(job.models, [JobInput(model: 1, tensor: "model.layers.1.mlp.up_proj.weight")])
        XCTAssertEqual(plan.jobs.first { $0.output == "model.norm.weight" }?.models.first?.model, 1)
        XCTAssertEqual(plan.jobs.first { $0.output == "model.embed_tokens.weight" }?.models.first?.model, 0)
        let out = dir.appendingPathComponent("stack")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        let cfg = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        XCTAssertTrue(cfg.contains("\"num_hidden_layers\": 3"))
        XCTAssertEqual(try Checkpoint(path: out.path).tensor("model.layers.2.mlp.up_proj.weight"),
                       try Checkpoint(path: b).tensor("model.layers.1.mlp.up_proj.weight"))
    }

    /// A whole run through the executor (chunked, streamed and whole-tensor jobs, bf16 inputs
    /// decoded in parallel) with the plan's thread count 1 and 2: the same bytes in every shard.
    func testPlanThreadCountDoesNotChangeTheOutput() throws {
        let base = try makeModel("base", offset: 0, vocab: 40_000)
        let a = try makeModel("a", offset: 0.25, vocab: 40_000, dtype: .bf16), b = try makeModel("b", offset: -0.5, vocab: 40_000, dtype: .bf16)
        for (method, p0, p1) in [("linear", "{weight: 0.6}", "{weight: 0.4}"), ("dare_ties", "{weight: 0.6, density: 0.5}", "{weight: 0.4, density: 0.5}"),
                                 ("karcher", "{}", "{}")] {
            let base = method == "dare_ties" ? "base_model: \(base)\n" : ""
            let text = "merge_method: \(method)\n\(base)models:\n  - model: \(a)\n    parameters: \(p0)\n  - model: \(b)\n    parameters: \(p1)\n"
            var outputs: [Data] = []
            for threads in [1, 2] {
                let plan = try MergePlanner.plan(recipe(text), options: PlanOptions(seed: 7, threads: threads))
                XCTAssertEqual(plan.threads, threads)
                let out = dir.appendingPathComponent("\(method)-\(threads)")
                _ = try MergeExecutor.run(plan.checked(), to: out, options: ExecutionOptions(hashInputs: false, progress: false))
                outputs.append(try Data(contentsOf: out.appendingPathComponent("model.safetensors")))
            }
            XCTAssertEqual(outputs[0], outputs[1], method)
        }
    }

    /// sce's whole-tensor scratch is one Float32 variance per element, and only when it selects
    /// (select_topk < 1); it was counted per model and always (39% above the measured peak at the
    /// TinyLlama shape).
    func testSCEEstimateCountsOneVariancePerElementWhenSelecting() throws {
        let base = try makeModel("base", offset: 0), a = try makeModel("a", offset: 1), b = try makeModel("b", offset: 2)
        func jobBytes(_ topk: Double) throws -> Int {
            let plan = try MergePlanner.plan(recipe("merge_method: sce\nbase_model: \(base)\nmodels:\n  - model: \(a)\n  - model: \(b)\nparameters:\n  select_topk: \(topk)\n"))
            let job = try XCTUnwrap(plan.jobs.first { $0.output == "model.embed_tokens.weight" })
            return plan.estimatedJobBytes(job)
        }
        XCTAssertEqual(try jobBytes(0.5) - jobBytes(1), 4 * 8 * 4)
    }

    func testDryRunDescriptionAndMemoryEstimate() throws {
        let base = try makeModel("base", offset: 0), a = try makeModel("a", offset: 1, dtype: .bf16)
        let plan = try MergePlanner.plan(recipe("merge_method: dare_ties\nbase_model: \(base)\nmodels:\n  - model: \(a)\n    parameters: {weight: 1, density: 0.5}\n"),
                                         options: PlanOptions(seed: 42))
        let text = plan.describe()
        XCTAssertTrue(text.contains("seed: 42"))
        XCTAssertTrue(text.contains("estimated peak memory"))
        XCTAssertTrue(text.contains("model.layers.1.mlp.up_proj.weight [3, 4] F32 <- base [0], [1](density=0.5, weight=1)"), text)
        // embed [8, 4], streamed: output piece 128 B + base mapped 128 B + bf16 mapped 64 B, per thread a
        // decoded block of 128 B and a block of pruned deltas of 128 B, plus one more piece of 128 B
        // waiting for the writer
        XCTAssertEqual(plan.threads, ParallelLoops.machineThreads)
        let threads = plan.threads
        XCTAssertEqual(plan.estimatedPeakBytes, 128 + 128 + 64 + threads * (128 + 128) + 128)
        // The estimate follows the plan's own thread count (the CLI's --threads).
        var three = plan
        three.threads = 3
        XCTAssertEqual(three.estimatedPeakBytes, 128 + 128 + 64 + 3 * (128 + 128) + 128)
        XCTAssertThrowsError(try MergeExecutor.run(plan, to: dir.appendingPathComponent("x"), options: ExecutionOptions(memoryBudget: 100, progress: false)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x").path))
        // The same budget as the automatic default: no refusal, and the bytes of an unbudgeted run.
        var auto = ExecutionOptions(memoryBudget: 100, progress: false)
        auto.memoryBudgetIsAutomatic = true
        _ = try MergeExecutor.run(plan, to: dir.appendingPathComponent("auto"), options: auto)
        _ = try MergeExecutor.run(plan, to: dir.appendingPathComponent("free"), options: ExecutionOptions(progress: false))
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("auto/model.safetensors")),
                       try Data(contentsOf: dir.appendingPathComponent("free/model.safetensors")))
    }

    /// `--memory-budget`: sizes, none, and the automatic default read from /proc/meminfo and the
    /// cgroup v2 limit (the lower of MemAvailable and the limit minus usage).
    func testMemoryBudgetResolution() throws {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"
        XCTAssertEqual(MemoryBudget.available(meminfo: meminfo, cgroupMax: nil, cgroupCurrent: nil), 20_000_000 * 1024)
        XCTAssertEqual(MemoryBudget.available(meminfo: meminfo, cgroupMax: "max\n", cgroupCurrent: "123\n"), 20_000_000 * 1024)
        XCTAssertEqual(MemoryBudget.available(meminfo: meminfo, cgroupMax: "4294967296\n", cgroupCurrent: "1073741824\n"), 3 << 30)
        XCTAssertEqual(MemoryBudget.available(meminfo: meminfo, cgroupMax: "1000\n", cgroupCurrent: "5000\n"), 0)
        XCTAssertEqual(MemoryBudget.available(meminfo: nil, cgroupMax: "4096", cgroupCurrent: nil), 4096)
        XCTAssertNil(MemoryBudget.available(meminfo: "MemTotal: 5 kB\n", cgroupMax: nil, cgroupCurrent: nil))
        XCTAssertNil(MemoryBudget.available(meminfo: "MemAvailable: lots kB\n", cgroupMax: "max", cgroupCurrent: nil))

        let parse: (String) throws -> Int = { try ByteSize.parse($0) }
        XCTAssertEqual(try MemoryBudget.resolve("2GB", parseSize: parse), MemoryBudget(bytes: 2_000_000_000, isAutomatic: false, origin: "--memory-budget 2GB"))
        XCTAssertEqual(try MemoryBudget.resolve("None", parseSize: parse).bytes, nil)
        XCTAssertFalse(try MemoryBudget.resolve("none", parseSize: parse).isAutomatic)
        XCTAssertThrowsError(try MemoryBudget.resolve("lots", parseSize: parse))
        let auto = try MemoryBudget.resolve(nil, parseSize: parse)
        XCTAssertTrue(auto.isAutomatic)
        XCTAssertTrue(try MemoryBudget.resolve("auto", parseSize: parse).isAutomatic)
        if let available = MemoryBudget.availableBytes() {
            // Read twice, a moment apart: the figures move a little with the machine.
            let b = try XCTUnwrap(auto.bytes)
            XCTAssertEqual(Double(b), Double(available) * MemoryBudget.automaticShare, accuracy: Double(available) * 0.1)
            XCTAssertTrue(auto.line.hasPrefix("memory budget: "), auto.line)
            XCTAssertTrue(auto.line.contains("(automatic: 80% of "), auto.line)
        }
        // The dry run prints the budget and what a run would do over it.
        try Binary.requireBuilt()
        let dry = try Binary.run(["merge", "fixtures/merge/recipes/ties.yml", dir.appendingPathComponent("dry").path, "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.err)
        XCTAssertTrue(dry.out.contains("memory budget: "), dry.out)
        let tight = try Binary.run(["merge", "fixtures/merge/recipes/ties.yml", dir.appendingPathComponent("dry").path, "--dry-run", "--memory-budget", "10KB"])
        XCTAssertTrue(tight.out.contains("memory budget: 10.0 kB (--memory-budget 10KB)\nthe largest job needs more than --memory-budget: the merge would refuse to start"), tight.out)
        let run = try Binary.run(["merge", "fixtures/merge/recipes/ties.yml", dir.appendingPathComponent("dry").path, "--memory-budget", "10KB"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.err.contains("but --memory-budget is 10.0 kB"), run.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("dry").path))
    }

    func testLargeElementwiseJobRunsInChunks() throws {
        // 1.2M elements > MergeExecutor.chunkElements: the linear merge runs chunk by chunk.
        func write(_ name: String, _ dtype: DType, _ f: (Int) -> Float) throws -> String {
            let d = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            let t = Tensor(shape: [1200, 1000], scalars: (0..<1_200_000).map(f))
            let w = try SafetensorsWriter(url: d.appendingPathComponent("model.safetensors"), entries: [TensorEntry(name: "w", dtype: dtype, shape: t.shape)])
            try w.write("w", t)
            try w.finish()
            return d.path
        }
        let a = try write("a", .f32) { Float($0 % 1000) * 0.001 }
        let b = try write("b", .bf16) { Float($0 / 1000) * 0.25 }
        let plan = try MergePlanner.plan(recipe("merge_method: linear\nmodels:\n  - model: \(a)\n    parameters: {weight: 3}\n  - model: \(b)\n    parameters: {weight: 1}\n"))
        XCTAssertTrue(plan.method.isElementwise(plan.jobs[0].parameters))
        // two output pieces of one chunk (one filling, one being written) + one chunk of each input:
        // F32 mapped, BF16 mapped plus its decoded copy (instead of whole tensors: 4.8 + 2.4 + 4.8 MB)
        let chunk = MergeExecutor.chunkElements
        XCTAssertEqual(plan.estimatedPeakBytes, 2 * 4 * chunk + 4 * chunk + (2 + 4) * chunk)
        let out = dir.appendingPathComponent("big")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        let merged = try Checkpoint(path: out.path).tensor("w")
        let ta = try Checkpoint(path: a).tensor("w"), tb = try Checkpoint(path: b).tensor("w")
        for i in stride(from: 0, to: 1_200_000, by: 997) {
            XCTAssertEqual(merged.scalars[i], Float((3 * Double(ta.scalars[i]) + Double(tb.scalars[i])) / 4), accuracy: 1e-6)
        }
        XCTAssertEqual(merged.scalars[1_199_999], Float((3 * Double(ta.scalars[1_199_999]) + Double(tb.scalars[1_199_999])) / 4), accuracy: 1e-6)
    }

    func testValueScanFindsNaN() throws {
        let base = try makeModel("base", offset: .nan)
        let plan = try MergePlanner.plan(recipe("merge_method: linear\nmodels:\n  - model: \(base)\n    parameters: {weight: 1}\n"))
        let findings = try ValueScan.scan(plan)
        XCTAssertEqual(findings.count, 7)
        XCTAssertEqual(findings.map(\.nonFinite), findings.map(\.elements))  // every value is NaN
    }

    func testSHA256KnownVectors() {
        var s = SHA256()
        s.update(Array("abc".utf8))
        XCTAssertEqual(SHA256.hex(s.finalize()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var t = SHA256()
        t.update(Array(String(repeating: "a", count: 1000).utf8))
        XCTAssertEqual(SHA256.hex(t.finalize()), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    /// Pieces smaller than what the buffer still has room for are appended to it (they were
    /// dropped before: update("ab") then update("c") hashed "c").
    func testSHA256OfPiecesIsTheDigestOfTheWhole() {
        for hw in [false, SHA256.hardware] {
            SHA256.hardware = hw
            var s = SHA256()
            for piece in ["a", "b", "c"] { s.update(Array(piece.utf8)) }
            XCTAssertEqual(SHA256.hex(s.finalize()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "hardware \(hw)")
            var t = SHA256()
            for _ in 0..<100 { t.update(Array(String(repeating: "a", count: 10).utf8)) }
            XCTAssertEqual(SHA256.hex(t.finalize()), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3", "hardware \(hw)")
        }
        SHA256.hardware = ws_sha256_shani_available() != 0
    }

    /// The SHA-extension compression and the plain Swift one agree on every length around the
    /// block boundaries and on a few MiB of random bytes fed in uneven pieces (skipped where the
    /// CPU has no SHA extensions: then only the Swift path runs, as the known vectors check).
    func testSHA256HardwareAndSwiftPathsAgree() throws {
        guard SHA256.hardware else { throw XCTSkip("no SHA extensions on this CPU") }
        defer { SHA256.hardware = true }
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(3 << 20) + 77).map { _ in UInt8.random(in: 0...255, using: &rng) }
        func digest(_ bytes: ArraySlice<UInt8>, hardware: Bool, pieces: [Int]) -> String {
            SHA256.hardware = hardware
            var s = SHA256()
            var i = bytes.startIndex, k = 0
            while i < bytes.endIndex {
                let n = min(pieces[k % pieces.count], bytes.endIndex - i)
                s.update(Array(bytes[i..<(i + n)])); i += n; k += 1
            }
            return SHA256.hex(s.finalize())
        }
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000, 4096 + 3] {
            XCTAssertEqual(digest(data[0..<n], hardware: true, pieces: [n + 1]), digest(data[0..<n], hardware: false, pieces: [n + 1]), "\(n) bytes")
        }
        XCTAssertEqual(digest(data[...], hardware: true, pieces: [1 << 20, 13, 64, 999_999]),
                       digest(data[...], hardware: false, pieces: [4 << 20]))
        SHA256.hardware = true
        var s = SHA256()
        s.update(Array("abc".utf8))
        XCTAssertEqual(SHA256.hex(s.finalize()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// Out-of-range and non-finite parameters are pre-flight problems naming the parameter and
    /// the model; SLERP's t outside [0, 1] passes only with allowExtrapolation.
    func testParameterValuesAreValidated() throws {
        let base = try makeModel("base", offset: 0), a = try makeModel("a", offset: 1), b = try makeModel("b", offset: 2)
        func problems(_ yaml: String, extrapolate: Bool = false) throws -> [String] {
            var o = PlanOptions()
            o.allowExtrapolation = extrapolate
            return try MergePlanner.plan(recipe(yaml), options: o).problems
        }
        func ties(density: String) -> String {
            "merge_method: ties\nbase_model: \(base)\nmodels:\n  - model: \(a)\n    parameters: {weight: 1, density: \(density)}\n  - model: \(b)\n    parameters: {weight: 1, density: 0.5}\n"
        }
        XCTAssertEqual(try problems(ties(density: "1")), [])
        XCTAssertEqual(try problems(ties(density: "1.5")), ["parameter \"density\" for model \(a) is 1.5; it must be in (0, 1]"])
        XCTAssertEqual(try problems(ties(density: "0")).count, 1)
        XCTAssertEqual(try problems(ties(density: "-0.5")).count, 1)
        // The recipe parser refuses non-finite numbers itself; a recipe built in code (search,
        // the short form of `merge`) reaches the planner's check.
        XCTAssertThrowsError(try recipe(ties(density: "1e400")))
        var built = try recipe(ties(density: "0.5"))
        built.models![0].parameters.settings["density"] = .value(.number(.nan))
        XCTAssertEqual(try MergePlanner.plan(built).problems, ["parameter \"density\" for model \(a) is nan; it must be a finite number"])
        // A density gradient is checked at every tensor's value: 1.2 at the last layer is out of range.
        XCTAssertEqual(try problems(ties(density: "[0.2, 1.2]")).count, 1)
        let slerp = { (t: String) in "merge_method: slerp\nbase_model: \(base)\nmodels:\n  - model: \(base)\n  - model: \(a)\nparameters:\n  t: \(t)\n" }
        XCTAssertEqual(try problems(slerp("0.5")), [])
        XCTAssertEqual(try problems(slerp("5")), ["parameter \"t\" of slerp is 5; it must be in [0, 1] (or pass --allow-extrapolation)"])
        XCTAssertEqual(try problems(slerp("5"), extrapolate: true), [])
        var infinite = try recipe(slerp("0.5"))
        infinite.parameters.settings["t"] = .value(.number(-.infinity))
        var o = PlanOptions()
        o.allowExtrapolation = true
        XCTAssertEqual(try MergePlanner.plan(infinite, options: o).problems.count, 1, "extrapolation still needs a finite t")
        let karcher = "merge_method: karcher\nmodels:\n  - model: \(a)\n  - model: \(b)\nparameters:\n  max_iter: 2.5\n  tol: 0\n"
        XCTAssertEqual(try problems(karcher).sorted(), ["parameter \"max_iter\" of karcher is 2.5; it must be a whole number in [1, 100000]",
                                                         "parameter \"tol\" of karcher is 0; it must be in (0, ∞)"])
        // Finite weights whose sum overflows: a typed error from the merge, and no output.
        let plan = try MergePlanner.plan(recipe("merge_method: linear\nmodels:\n  - model: \(a)\n    parameters: {weight: 1e308}\n  - model: \(b)\n    parameters: {weight: 1e308}\n"))
        XCTAssertEqual(plan.problems, [])
        let out = dir.appendingPathComponent("overflow")
        XCTAssertThrowsError(try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false))) { e in
            XCTAssertTrue("\(e)".contains("sum to inf"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}

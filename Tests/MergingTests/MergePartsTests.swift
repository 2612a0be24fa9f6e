import Checkpoints
import Foundation
import XCTest
@testable import Merging

/// One merge split across processes (`merge --plan-only`, `--part I/N`, `--assemble`), on the
/// committed fixtures (fixtures/merge: a base and three fine-tunes, 21 tensors, 430 kB each) with
/// 60 kB shards, so the output has 10 shards: the assembled folder is the one-process merge's,
/// file for file and byte for byte, for every method family (element-wise, TIES/DARE, SLERP, SVD, passthrough) and N = 1, 2, 3 and 25 (more parts
/// than shards); parts run again are idempotent; the assembly refuses missing, extra, stale and
/// tampered parts.
final class MergePartsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shardBytes = 60_000
    private let fm = FileManager.default

    static let ties = """
        merge_method: ties
        base_model: fixtures/merge/base
        models:
          - model: fixtures/merge/ft-a
            parameters: {weight: 1.0, density: 0.5}
          - model: fixtures/merge/ft-b
            parameters: {weight: [0.8, 1.0], density: 0.5}
          - model: fixtures/merge/ft-c
            parameters: {weight: [{filter: self_attn, value: 0.5}, {value: 1.0}], density: 0.5}
        parameters: {lambda: 1.0}
        dtype: float32

        """

    /// One recipe per method family: element-wise, task arithmetic with per-tensor global
    /// statistics (TIES magnitude thresholds, DARE masks), whole-tensor SVD, passthrough slices.
    static let recipes: [(name: String, yaml: String, seed: UInt64)] = [
        ("linear (bf16 out)", """
            merge_method: linear
            models:
              - model: fixtures/merge/ft-a
                parameters: {weight: 0.5}
              - model: fixtures/merge/ft-b
                parameters: {weight: 0.3}
              - model: fixtures/merge/ft-c
                parameters: {weight: 0.2}
            out_dtype: bfloat16

            """, 0),
        ("ties", ties, 0),
        ("dare_ties", """
            merge_method: dare_ties
            base_model: fixtures/merge/base
            models:
              - model: fixtures/merge/ft-a
                parameters: {weight: 1.0, density: 0.4}
              - model: fixtures/merge/ft-b
                parameters: {weight: 0.7, density: 0.6}
            parameters: {rescale: true}

            """, 7),
        ("tsv", """
            merge_method: tsv
            base_model: fixtures/merge/base
            models:
              - model: fixtures/merge/ft-a
              - model: fixtures/merge/ft-b
              - model: fixtures/merge/ft-c

            """, 0),
        ("slerp (whole tensors, a filtered gradient)", """
            merge_method: slerp
            base_model: fixtures/merge/base
            models:
              - model: fixtures/merge/base
              - model: fixtures/merge/ft-a
            parameters:
              t: [{filter: self_attn, value: [0, 0.5, 1]}, {value: 0.3}]

            """, 0),
        ("passthrough slices", """
            merge_method: passthrough
            slices:
              - sources:
                  - model: fixtures/merge/ft-a
                    layer_range: [0, 2]
              - sources:
                  - model: fixtures/merge/ft-c
                    layer_range: [1, 2]

            """, 0),
    ]

    private func tmp() throws -> URL {
        let d = fm.temporaryDirectory.appendingPathComponent("weightsmith-parts-\(UUID().uuidString)")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    private func settings(seed: UInt64 = 0) -> PlanSettings {
        var s = PlanSettings()
        s.seed = seed
        s.searchDirectory = Self.root.path
        s.maxShardBytes = Self.shardBytes
        return s
    }

    /// The one-process merge into `dir/one/out`.
    private func oneProcess(_ yaml: String, seed: UInt64, in dir: URL) throws -> URL {
        let plan = try MergePlanner.plan(RecipeParser.parse(yaml, file: "recipe.yml"), options: settings(seed: seed).planOptions)
        let out = dir.appendingPathComponent("one/out")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(maxShardBytes: Self.shardBytes, progress: false))
        return out
    }

    /// The plan file of `yaml` for `dir/parts/out`, written to `dir/plan.json` and read back.
    private func planFile(_ yaml: String, seed: UInt64 = 0, in dir: URL, settings custom: PlanSettings? = nil) throws -> MergePlanFile {
        let s = custom ?? settings(seed: seed)
        let plan = try MergePlanner.plan(RecipeParser.parse(yaml, file: "recipe.yml"), options: s.planOptions)
        let url = dir.appendingPathComponent("plan.json")
        let file = try MergePlanFile.make(plan, recipeText: yaml, recipeFile: "recipe.yml", settings: s,
                                          output: dir.appendingPathComponent("parts/out"), path: url.path)
        try file.write(to: url)
        return try MergePlanFile.load(url)
    }

    /// The receipt name of part i of n (`PartNumber.receiptName`, spelled out).
    private func receipt(_ i: Int, _ n: Int) -> String { ".weightsmith-part-\(i)-of-\(n).json" }

    @discardableResult
    private func runPart(_ file: MergePlanFile, _ i: Int, of n: Int) throws -> PartReport {
        try MergeParts.run(file, part: PartNumber(index: i, count: n), options: PartOptions(progress: false))
    }

    /// Every entry of a folder (hidden ones too) with its bytes.
    private func contents(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try fm.contentsOfDirectory(atPath: dir.path) {
            out[name] = try Data(contentsOf: dir.appendingPathComponent(name))
        }
        return out
    }

    private func assertIdentical(_ a: URL, _ b: URL, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try contents(a), y = try contents(b)
        XCTAssertEqual(x.keys.sorted(), y.keys.sorted(), what, file: file, line: line)
        for (name, bytes) in x where y[name] != bytes {
            XCTFail("\(what): \(name) differs (\(bytes.count) vs \(y[name]?.count ?? -1) bytes)", file: file, line: line)
        }
    }

    // MARK: - Bit identity

    func testPartsAndAssemblyEqualTheOneProcessMergeForEveryFamily() throws {
        for r in Self.recipes {
            let dir = try tmp()
            let one = try oneProcess(r.yaml, seed: r.seed, in: dir)
            let shards = try fm.contentsOfDirectory(atPath: one.path).filter { $0.hasSuffix(".safetensors") }
            XCTAssertGreaterThanOrEqual(shards.count, 4, "\(r.name): the tiny shard size should give several shards")
            for n in [1, 2, 3, 25] {
                let sub = dir.appendingPathComponent("n\(n)")
                try fm.createDirectory(at: sub, withIntermediateDirectories: true)
                let file = try planFile(r.yaml, seed: r.seed, in: sub)
                XCTAssertEqual(file.shards.map(\.file).sorted(), shards.sorted(), r.name)
                var written: [String] = []
                for i in 1...n {
                    let report = try runPart(file, i, of: n)
                    XCTAssertFalse(report.alreadyComplete)
                    written += report.shards
                }
                // Every shard exactly once; before the assembly the folder is not loadable as a model.
                XCTAssertEqual(written.sorted(), shards.sorted(), "\(r.name), N = \(n)")
                let out = sub.appendingPathComponent("parts/out")
                XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent(OutputFolder.markerName).path))
                let report = try MergeParts.assemble(file)
                XCTAssertEqual(report.outputDirectory.path, out.path)
                try assertIdentical(one, out, "\(r.name), N = \(n)")
            }
        }
    }

    /// A merge whose vocabulary matrices are laid out in a union vocabulary (tokens:, padding):
    /// the plan records each such job's layout, and parts plus assembly give the one-process bytes,
    /// tokenizer.json and tokenizer_config.json included.
    func testVocabularyUnionPartsEqualTheOneProcessMerge() throws {
        let dir = try tmp()
        let yaml = try String(contentsOf: Self.root.appendingPathComponent("fixtures/merge/vocab/mergekit/union-tokens-ties.yml"), encoding: .utf8)
        let one = try oneProcess(yaml, seed: 0, in: dir)
        let file = try planFile(yaml, in: dir)
        let text = try String(contentsOf: dir.appendingPathComponent("plan.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"vocabulary\"") && text.contains("\"rows\": 272"), "the plan records the vocabulary layout")
        for i in 1...2 { try runPart(file, i, of: 2) }
        try MergeParts.assemble(file)
        try assertIdentical(one, dir.appendingPathComponent("parts/out"), "union-tokens-ties, N = 2")
    }

    /// The values themselves (not only agreement of two code paths): a linear merge with weights
    /// [1, 0] assembled from 3 parts is ft-a, tensor for tensor.
    func testAssembledLinearMergeHoldsTheExpectedValues() throws {
        let dir = try tmp()
        let yaml = "merge_method: linear\nmodels:\n  - model: fixtures/merge/ft-a\n    parameters: {weight: 1}\n  - model: fixtures/merge/ft-b\n    parameters: {weight: 0}\n"
        let file = try planFile(yaml, in: dir)
        for i in 1...3 { try runPart(file, i, of: 3) }
        try MergeParts.assemble(file)
        let merged = try Checkpoint(path: dir.appendingPathComponent("parts/out").path)
        let a = try Checkpoint(path: Self.root.appendingPathComponent("fixtures/merge/ft-a").path)
        XCTAssertEqual(merged.tensorNames.sorted(), a.tensorNames.sorted())
        XCTAssertGreaterThan(merged.shards.count, 3)
        for name in a.tensorNames { XCTAssertEqual(try merged.tensor(name).scalars, try a.tensor(name).scalars, name) }
    }

    /// Without input hashes (`--no-hash`) the model card says "not computed" in both paths.
    func testWithoutInputHashesTheCardIsTheOneProcessCardToo() throws {
        let dir = try tmp()
        var s = settings()
        s.hashInputs = false
        let file = try planFile(Self.ties, in: dir, settings: s)
        for i in 1...2 { try runPart(file, i, of: 2) }
        try MergeParts.assemble(file)
        let plan = try MergePlanner.plan(RecipeParser.parse(Self.ties, file: "recipe.yml"), options: s.planOptions)
        let one = dir.appendingPathComponent("one/out")
        _ = try MergeExecutor.run(plan, to: one, options: ExecutionOptions(maxShardBytes: Self.shardBytes, hashInputs: false, progress: false))
        let out = dir.appendingPathComponent("parts/out")
        XCTAssertEqual(try contents(one), try contents(out))
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8).contains("not computed"))
    }

    /// `--memory-budget` on a part: the tightest budget the plan allows gives the same shards; a
    /// budget below it is refused before any work.
    /// `--allow-crimes` is one of the settings a plan fixes: parts re-plan with it, so a merge of
    /// inputs whose configs differ runs in parts as it does in one process.
    func testAllowConfigMismatchTravelsInThePlan() throws {
        let dir = try tmp()
        for m in ["base", "ft-b"] {
            try fm.copyItem(at: Self.root.appendingPathComponent("fixtures/merge/\(m)"), to: dir.appendingPathComponent(m))
        }
        let configURL = dir.appendingPathComponent("ft-b/config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["hidden_act"] = "gelu"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let yaml = "merge_method: linear\nparameters: {weight: 1}\nmodels:\n  - model: \(dir.path)/base\n  - model: \(dir.path)/ft-b\n"
        XCTAssertThrowsError(try planFile(yaml, in: dir))
        var s = settings()
        s.allowConfigMismatch = true
        let file = try planFile(yaml, in: dir, settings: s)
        XCTAssertTrue(file.settings.allowConfigMismatch)
        XCTAssertEqual(try file.replan().problems, [])
        try runPart(file, 1, of: 1)
        try MergeParts.assemble(file)
    }

    func testMemoryBudgetOfAPartKeepsTheBytes() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        var plan = try file.replan()
        let keeping = plan.estimatedPeakBytes
        plan.keepMappedBytes = 0
        let tight = min(keeping, plan.estimatedPeakBytes)  // on tiny tensors, dropping pages per block is not smaller
        XCTAssertThrowsError(try MergeParts.run(file, part: PartNumber(index: 1, count: 2), options: PartOptions(memoryBudget: tight - 1, progress: false)))
        for i in 1...2 { try MergeParts.run(file, part: PartNumber(index: i, count: 2), options: PartOptions(memoryBudget: tight, progress: false)) }
        try MergeParts.assemble(file)
        let one = try oneProcess(Self.ties, seed: 0, in: dir)
        XCTAssertEqual(try contents(one), try contents(dir.appendingPathComponent("parts/out")))
    }

    func testAssignmentBalancesBytesAndCoversEveryShardOnce() {
        let bytes = [65, 33, 32, 58, 58, 32, 58, 24, 65, 1]
        let a = MergeParts.assignment(shardBytes: bytes, parts: 3)
        XCTAssertEqual(a.flatMap { $0 }.sorted(), Array(0..<10))
        let loads = a.map { $0.reduce(0) { $0 + bytes[$1] } }
        XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, 65)
        // Largest first, each to the lightest part: 65 | 65 | 58, then 58 → part 3, 58 → part 1, 33 → part 2, ...
        XCTAssertEqual(a, [[0, 6, 7], [1, 2, 8, 9], [3, 4, 5]])
        XCTAssertEqual(loads, [147, 131, 148])
        let many = MergeParts.assignment(shardBytes: bytes, parts: 12)
        XCTAssertEqual(many.filter(\.isEmpty).count, 2)
        XCTAssertEqual(many.flatMap { $0 }.sorted(), Array(0..<10))
    }

    // MARK: - Reruns

    func testPartRunTwiceOrKilledAndRerunGivesTheSameBytes() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        let out = dir.appendingPathComponent("parts/out")
        for i in 1...3 { try runPart(file, i, of: 3) }
        let before = try contents(out)
        // Twice: nothing written, the receipt and shards checked.
        let again = try runPart(file, 2, of: 3)
        XCTAssertTrue(again.alreadyComplete)
        XCTAssertEqual(try contents(out), before)
        // Killed while writing: no receipt, one shard missing, another's temporary file left behind.
        let mine = again.shards
        XCTAssertGreaterThanOrEqual(mine.count, 2)
        try fm.removeItem(at: out.appendingPathComponent(receipt(2, 3)))
        try fm.removeItem(at: out.appendingPathComponent(mine[0]))
        let stale = out.appendingPathComponent(".\(mine[1]).tmp-99999-12345")
        try Data("half a shard".utf8).write(to: stale)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains(stale.lastPathComponent) && reason.contains("rerun that part"), reason)
        }
        let rerun = try runPart(file, 2, of: 3)
        XCTAssertFalse(rerun.alreadyComplete)
        XCTAssertFalse(fm.fileExists(atPath: stale.path), "the rerun removes its own temporary file")
        XCTAssertEqual(try contents(out), before)
        try MergeParts.assemble(file)
        let one = try oneProcess(Self.ties, seed: 0, in: dir)
        try assertIdentical(one, out, "after a rerun")
    }

    /// Two assemblies at once: the second fails at once, naming the lock, and leaves the folder as
    /// it was; after the first, no lock file is left; a lock file left by a killed assembly is taken over.
    func testASecondAssemblyAtTheSameTimeFailsFast() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        let out = dir.appendingPathComponent("parts/out")
        for i in 1...2 { try runPart(file, i, of: 2) }
        let before = try contents(out)
        let held = try AssemblyLock(out)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("another merge --assemble") && reason.contains(AssemblyLock.name), reason)
        }
        var now = try contents(out)
        now[AssemblyLock.name] = nil
        XCTAssertEqual(now, before, "the refused assembly wrote or removed nothing")
        held.release()
        // A stale lock file (its holder killed: no flock on it) does not stop the next assembly or a part.
        try Data().write(to: out.appendingPathComponent(AssemblyLock.name))
        try runPart(file, 1, of: 2)
        try MergeParts.assemble(file)
        XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent(AssemblyLock.name).path))
        try assertIdentical(try oneProcess(Self.ties, seed: 0, in: dir), out, "after a refused concurrent assembly")
    }

    // MARK: - Refusals

    func testAssemblyRefusesMissingExtraForeignAndTamperedParts() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        let out = dir.appendingPathComponent("parts/out")
        try runPart(file, 1, of: 3)
        try runPart(file, 3, of: 3)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            XCTAssertEqual(e as? MergePartsError, .missingParts(output: out.path, parts: [2], count: 3))
            XCTAssertTrue("\(e)".contains("2/3"), "\(e)")
        }
        try runPart(file, 2, of: 3)
        let complete = try contents(out)

        // An extra part: a receipt of another split.
        let extra = out.appendingPathComponent(receipt(1, 2))
        try fm.copyItem(at: out.appendingPathComponent(receipt(1, 3)), to: extra)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .badPart(f, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, extra.path)
            XCTAssertTrue(reason.contains("extra part"), reason)
        }
        try fm.removeItem(at: extra)

        // A part of another plan (a different density): its receipt and shards copied in.
        let otherDir = dir.appendingPathComponent("other")
        try fm.createDirectory(at: otherDir, withIntermediateDirectories: true)
        let other = try planFile(Self.ties.replacingOccurrences(of: "density: 0.5}\n  - model: fixtures/merge/ft-b", with: "density: 0.3}\n  - model: fixtures/merge/ft-b"), in: otherDir)
        XCTAssertNotEqual(other.id, file.id)
        let foreign = try runPart(other, 2, of: 3)
        for name in foreign.shards + [receipt(2, 3)] {
            let dest = out.appendingPathComponent(name)
            try fm.removeItem(at: dest)
            try fm.copyItem(at: otherDir.appendingPathComponent("parts/out").appendingPathComponent(name), to: dest)
        }
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .badPart(f, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.hasSuffix(".weightsmith-part-2-of-3.json"), f)
            XCTAssertTrue(reason.contains("another plan") && reason.contains(other.id), reason)
        }
        // The other plan's parts cannot write into this plan's folder at all.
        XCTAssertThrowsError(try MergeParts.run(other, part: PartNumber(index: 1, count: 3), output: out, options: PartOptions(progress: false))) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("another plan"), reason)
        }
        try runPart(file, 2, of: 3)
        XCTAssertEqual(try contents(out), complete)

        // A tampered shard: one byte of tensor data changed, same size.
        let shard = out.appendingPathComponent(file.shards[4].file)
        var bytes = try Data(contentsOf: shard)
        bytes[bytes.count - 3] ^= 0x01
        try bytes.write(to: shard)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .badShard(f, _, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, shard.path)
            XCTAssertTrue(reason.contains("SHA-256"), reason)
        }
        XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent("README.md").path), "nothing written by a refused assembly")
        // A receipt edited to claim another shard list.
        let owner = (1...3).first { MergeParts.assignment(shardBytes: file.shards.map(\.bytes), parts: 3)[$0 - 1].contains(4) }!
        let receipt = out.appendingPathComponent(receipt(owner, 3))
        let text = try String(contentsOf: receipt, encoding: .utf8)
        try text.replacingOccurrences(of: file.shards[4].file, with: "model-99999.safetensors").write(to: receipt, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .badPart(f, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, receipt.path)
            XCTAssertTrue(reason.contains("edited"), reason)
        }
        // Rerunning the owner part repairs both.
        try fm.removeItem(at: receipt)
        try runPart(file, owner, of: 3)
        try MergeParts.assemble(file)
        XCTAssertTrue(fm.fileExists(atPath: out.appendingPathComponent(OutputFolder.markerName).path))
        // Assembled: no more parts, no second assembly.
        XCTAssertThrowsError(try runPart(file, 1, of: 3))
        XCTAssertThrowsError(try MergeParts.assemble(file))
        // An assembly killed after its marker, before removing the partial marker and a receipt:
        // parts are refused, and the next assembly only finishes the clean-up.
        let assembled = try contents(out)
        try Data("{\"plan_id\": \"\(file.id)\"}\n".utf8).write(to: out.appendingPathComponent(MergeParts.partialMarker))
        try Data(PartReceipt(planID: file.id, index: 1, count: 3, shards: []).text.utf8).write(to: out.appendingPathComponent(self.receipt(1, 3)))
        XCTAssertThrowsError(try runPart(file, 2, of: 3)) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("already assembled"), reason)
        }
        try MergeParts.assemble(file)
        XCTAssertEqual(try contents(out), assembled)
    }

    func testStaleInputsAreRefusedAndACopyWithANewTimeIsAccepted() throws {
        let dir = try tmp()
        // Inputs copied into the test folder, so one can be changed.
        let inputs = dir.appendingPathComponent("fixtures/merge")
        try fm.createDirectory(at: inputs, withIntermediateDirectories: true)
        for m in ["base", "ft-a", "ft-b", "ft-c"] {
            try fm.copyItem(at: Self.root.appendingPathComponent("fixtures/merge/\(m)"), to: inputs.appendingPathComponent(m))
        }
        let file = try planFile(Self.ties.replacingOccurrences(of: "fixtures/merge/", with: inputs.path + "/"), in: dir)
        let model = inputs.appendingPathComponent("ft-b/model.safetensors")
        let original = try Data(contentsOf: model)
        // Same bytes, a new modification time (a copy): the SHA-256 decides, the part runs.
        try fm.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 3600)], ofItemAtPath: model.path)
        XCTAssertNoThrow(try runPart(file, 1, of: 2))
        // One value changed: stale.
        var changed = original
        changed[changed.count - 5] ^= 0x40
        try changed.write(to: model)
        XCTAssertThrowsError(try runPart(file, 2, of: 2)) { e in
            guard case let .staleInput(f, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, model.resolvingSymlinksInPath().path)
            XCTAssertTrue(reason.contains("SHA-256"), reason)
        }
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case .staleInput? = e as? MergePartsError else { return XCTFail("\(e)") }
        }
        // A different size: stale without hashing.
        try original.prefix(original.count - 8).write(to: model)
        XCTAssertThrowsError(try runPart(file, 2, of: 2)) { e in
            guard case let .staleInput(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("size"), reason)
        }
        // A changed tokenizer (copied by the assembly) is stale too.
        try original.write(to: model)
        let tok = inputs.appendingPathComponent("base/tokenizer.json")
        try (try Data(contentsOf: tok) + Data(" ".utf8)).write(to: tok)
        XCTAssertThrowsError(try runPart(file, 2, of: 2)) { e in
            guard case let .staleInput(f, _)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.hasSuffix("base/tokenizer.json"), f)
        }
    }

    func testPlanFileIsCheckedAndPartNumbersAreValidated() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        let url = dir.appendingPathComponent("plan.json")
        XCTAssertEqual(file.id.count, 64)
        // The id is the content's hash: the same plan made again has the same id.
        let again = try planFile(Self.ties, in: dir)
        XCTAssertEqual(again.id, file.id)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), file.text)
        // Edited: a density changed in the job list.
        let text = try String(contentsOf: url, encoding: .utf8)
        let edited = dir.appendingPathComponent("edited.json")
        try text.replacingOccurrences(of: "\"density\": 0.5", with: "\"density\": 0.6").write(to: edited, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try MergePlanFile.load(edited)) { e in
            guard case .planEdited(edited.path, file.id, _)? = e as? MergePartsError else { return XCTFail("\(e)") }
        }
        // Edited with its id recomputed (as a plan from another planner would be): the job list no
        // longer is the recipe's plan, and every part refuses it before any work.
        let value = try StrictJSONParser.parse(Array(text.replacingOccurrences(of: "\"density\": 0.5", with: "\"density\": 0.6").utf8))
        guard case let .object(members) = value else { return XCTFail("not an object") }
        let content = JSONValue.object(members.filter { $0.key != "plan_id" })
        let rehashed = JSONValue.object([("plan_id", .string(MergePlanFile.hash(content)))] + members.filter { $0.key != "plan_id" })
        try Data((JSONText.string(rehashed) + "\n").utf8).write(to: edited)
        let forged = try MergePlanFile.load(edited)
        XCTAssertThrowsError(try runPart(forged, 1, of: 2)) { e in
            XCTAssertEqual(e as? MergePartsError, .planChanged(path: edited.path, section: "\"shards\" section"))
        }
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("parts/out").path), "refused before the output folder was made")
        try Data("{\"plan_id\": \"x\"}".utf8).write(to: edited)
        XCTAssertThrowsError(try MergePlanFile.load(edited)) { e in
            guard case .badPlanFile? = e as? MergePartsError else { return XCTFail("\(e)") }
        }
        for (given, fragment) in [("0/3", "numbered from 1"), ("4/3", "1...3"), ("1/0", "at least 1"), ("a/b", "I/N"), ("3", "I/N"),
                                  ("1/999999999999", "at most 100000"), ("-1/2", "numbered from 1"), ("1/2/3", "I/N")] {
            XCTAssertThrowsError(try PartNumber(parsing: given)) { e in
                guard case let .badPartNumber(g, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
                XCTAssertEqual(g, given)
                XCTAssertTrue(reason.contains(fragment), "\(given): \(reason)")
            }
        }
        XCTAssertEqual(try PartNumber(parsing: "2/5"), try PartNumber(index: 2, count: 5))
    }

    func testOutputFolderRules() throws {
        let dir = try tmp()
        let file = try planFile(Self.ties, in: dir)
        let out = dir.appendingPathComponent("parts/out")
        // Not empty and not a partial output: refused, nothing touched.
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        let mine = out.appendingPathComponent("notes.txt")
        try Data("mine".utf8).write(to: mine)
        XCTAssertThrowsError(try runPart(file, 1, of: 2)) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("notes.txt"), reason)
        }
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.path), ["notes.txt"])
        // A foreign file appearing in a partial output is refused too.
        try fm.removeItem(at: mine)
        try runPart(file, 1, of: 2)
        try Data("mine".utf8).write(to: mine)
        XCTAssertThrowsError(try runPart(file, 2, of: 2))
        XCTAssertThrowsError(try MergeParts.assemble(file))
        XCTAssertEqual(try Data(contentsOf: mine), Data("mine".utf8))
        try fm.removeItem(at: mine)
        // An input as the output: refused.
        XCTAssertThrowsError(try MergeParts.run(file, part: PartNumber(index: 1, count: 2),
                                                output: Self.root.appendingPathComponent("fixtures/merge/ft-a"), options: PartOptions(progress: false))) { e in
            guard case .overlapsInput? = e as? OutputError else { return XCTFail("\(e)") }
        }
        // A temporary file left by a part of the other half blocks the assembly, with its name.
        try runPart(file, 2, of: 2)
        let temp = out.appendingPathComponent(".\(file.shards[0].file).tmp-99999-1")
        try Data().write(to: temp)
        XCTAssertThrowsError(try MergeParts.assemble(file)) { e in
            guard case let .outputNotUsable(_, reason)? = e as? MergePartsError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains(temp.lastPathComponent) && reason.contains("temporary"), reason)
        }
        try fm.removeItem(at: temp)
        // An assembly killed while writing its own files leaves their temporary files: the next one removes them.
        let own = [".config.json.tmp-99999-2", ".README.md.tmp-99999-3", ".model.safetensors.index.json.tmp-99999-4"].map(out.appendingPathComponent)
        for u in own { try Data("partial".utf8).write(to: u) }
        try Data("{}".utf8).write(to: out.appendingPathComponent("config.json"))
        try MergeParts.assemble(file)
        for u in own { XCTAssertFalse(fm.fileExists(atPath: u.path), u.lastPathComponent) }
        let one = try oneProcess(Self.ties, seed: 0, in: dir)
        XCTAssertEqual(try contents(one), try contents(out))
        XCTAssertFalse(try fm.contentsOfDirectory(atPath: out.path).contains { $0.hasPrefix(".weightsmith-part") || $0 == MergeParts.partialMarker })
    }
}

import ArgumentParser
import Checkpoints
import Foundation
import Merging

/// `weightsmith merge MULTI.yml OUT`: a multi-document recipe (mergekit-multi), run document by
/// document in dependency order. With an unnamed final document, OUT is the final merge and the
/// named ones are intermediates: kept in `--intermediate-dir DIR` (DIR/NAME, reused on a rerun
/// when the folder holds the same recipe and its own inputs were reused), otherwise written to a
/// hidden folder beside OUT and removed at the end. When every document is named, OUT is a
/// folder with one merged model per name (OUT/NAME), written atomically as a whole.
extension MergeCommand {
    func runMulti(_ multi: MultiRecipe, outPath: String?, options: PlanOptions) throws {
        let fm = FileManager.default
        if dryRun {
            for (k, d) in multi.documents.enumerated() {
                let label = d.name ?? "final merge"
                print("document \(k + 1) of \(multi.documents.count): \(label) (line \(d.line)): \(d.recipe.mergeMethod)"
                      + (d.dependencies.isEmpty ? "" : ", takes the output of \(d.dependencies.joined(separator: ", "))"))
                if d.dependencies.isEmpty {
                    var r = d.recipe
                    if let outDtype { r.outDType = try dtype(outDtype) }
                    let plan = try MergePlanner.plan(r, options: options)
                    print(plan.describe(), terminator: "")
                    if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems.map { "\(label): \($0)" }) }
                } else {
                    print("  (planned once \(d.dependencies.joined(separator: ", ")) exist)")
                }
            }
            return
        }
        guard let outPath else { throw ValidationError("missing the output folder (OUT_DIR or -o)") }
        let out = URL(fileURLWithPath: outPath)
        // Nothing (not even the hidden intermediates folder) is created inside an input.
        let names = Set(multi.documents.compactMap(\.name))
        var inputs: [URL] = []
        for p in Set(multi.documents.flatMap(\.recipe.modelPaths)) where !names.contains(p) {
            inputs.append(URL(fileURLWithPath: p))
            if let dir = options.searchDirectory { inputs.append(URL(fileURLWithPath: dir).appendingPathComponent(p)) }
        }
        do {
            _ = try OutputFolder.checkNotOverlapping(out, inputs: inputs)
            if let dir = intermediateDir { _ = try OutputFolder.checkNotOverlapping(URL(fileURLWithPath: dir), inputs: inputs) }
        } catch let e as OutputError {
            throw MergeError.other(e.description)
        }
        let b = try budget()
        var exec = ExecutionOptions(memoryBudget: b.bytes, maxShardBytes: try parseSize(shardSize),
                                    hashInputs: !noHash, progress: !quiet, overwrite: force)
        exec.memoryBudgetIsAutomatic = b.isAutomatic
        exec.allowNonFinite = nonFinite.allowNonFinite

        var outputs: [String: String] = [:]
        var reused = Set<String>()
        func runDocument(_ d: MultiRecipe.Document, to dest: URL, shownAs shown: URL? = nil, reuse: Bool) throws {
            let label = d.name ?? "final merge"
            var recipe = MultiRecipe.substituting(d.recipe, outputs)
            if let outDtype { recipe.outDType = try dtype(outDtype) }
            if reuse, let name = d.name, d.dependencies.allSatisfy(reused.contains),
               let previous = fm.contents(atPath: dest.appendingPathComponent("merge_recipe.yml").path),
               previous == Data(recipe.yaml().utf8) {
                if !quiet { FileHandle.standardError.write(Data("note: \(name): reused \(dest.path) (same recipe; remove it to merge again)\n".utf8)) }
                outputs[name] = dest.path
                reused.insert(name)
                return
            }
            var plan = try MergePlanner.plan(recipe, options: options)
            if stats { plan.problems += ValueScan.problems(try ValueScan.scan(plan)) }
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems.map { "\(label): \($0)" }) }
            for n in plan.notes where !quiet { FileHandle.standardError.write(Data("note: \(label): \(n)\n".utf8)) }
            let report = try MergeExecutor.run(plan, to: dest, options: exec)
            if let name = d.name { outputs[name] = report.outputDirectory.path }
            print("wrote \(label) to \((shown ?? report.outputDirectory).path): \(report.files.joined(separator: ", "))")
        }

        guard multi.final != nil else {
            // Every document named: OUT holds one folder per name, all or nothing.
            guard intermediateDir == nil else {
                throw ValidationError("every document of \(multi.file) is named, so each goes to OUT/NAME; --intermediate-dir is for the intermediates of a final (unnamed) merge")
            }
            let folder: OutputFolder
            do { folder = try OutputFolder.prepare(out, inputs: [], force: force, command: "merge") } catch let e as OutputError {
                throw MergeError.other(e.description)
            }
            try folder.write { partial in
                for d in multi.documents { try runDocument(d, to: partial.appendingPathComponent(d.name!), shownAs: out.appendingPathComponent(d.name!), reuse: false) }
            }
            return
        }
        let interDir: URL
        var temporary: URL? = nil
        if let dir = intermediateDir {
            interDir = URL(fileURLWithPath: dir)
            try fm.createDirectory(at: interDir, withIntermediateDirectories: true)
        } else if multi.documents.count > 1 {
            interDir = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).intermediates-\(getpid())")
            try fm.createDirectory(at: interDir, withIntermediateDirectories: false)
            temporary = interDir
            if !quiet {
                FileHandle.standardError.write(Data("note: intermediate merges go to \(interDir.path) and are removed at the end (--intermediate-dir DIR keeps them)\n".utf8))
            }
        } else {
            interDir = out.deletingLastPathComponent()
        }
        defer { if let temporary { try? fm.removeItem(at: temporary) } }
        for d in multi.documents {
            if let name = d.name {
                try runDocument(d, to: interDir.appendingPathComponent(name), reuse: intermediateDir != nil)
            } else {
                try runDocument(d, to: out, reuse: false)
            }
        }
    }
}

import ArgumentParser
import Checkpoints
import Foundation
import Grafting
import Transformer

extension GraftCommand {
    /// `--tuned NAME=DIR` repeated: one graft per task, stitched (Localize-and-Stitch).
    func graftTasks() throws {
        func named(_ args: [String], _ option: String) throws -> [(name: String, value: String)] {
            try args.map { a in
                guard let nv = Self.namedValue(a) else {
                    throw ValidationError("\(option) \"\(a)\": with several tasks give NAME=\(option == "--held-out" ? "FILE" : "DIR") (NAME a task of --tuned)")
                }
                return nv
            }
        }
        let tasks = tunedArgs.map { a -> (name: String, value: String) in
            if let nv = Self.namedValue(a) { return nv }
            // A bare folder among named ones: its last path component names the task.
            return (URL(fileURLWithPath: a).lastPathComponent, a)
        }
        let names = tasks.map(\.name)
        for n in names where n.isEmpty || n.count > 64 || !n.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
            throw ValidationError("--tuned: task name \"\(n.prefix(64))\" must be 1 to 64 letters, digits, '.', '_' or '-' (it names graft-NAME.safetensors)")
        }
        if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw ValidationError("--tuned: task name \"\(dup)\" is given twice")
        }
        let heldOuts = try named(heldOutArgs, "--held-out"), masks = try named(maskArgs, "--mask")
        for (option, list) in [("--held-out", heldOuts), ("--mask", masks)] {
            var seen = Set<String>()
            for (n, _) in list {
                guard names.contains(n) else { throw ValidationError("\(option) \(n)=...: no --tuned task is called \"\(n)\" (tasks: \(names.joined(separator: ", ")))") }
                guard seen.insert(n).inserted else { throw ValidationError("\(option): task \"\(n)\" is given twice") }
            }
        }
        if train != nil || validation != nil {
            throw ValidationError("--train grafts one task: train each task's mask with a single-task graft, then stitch the saved masks with --mask NAME=DIR")
        }
        if pick != nil { throw ValidationError("--pick chooses among several sparsities of one task; stitching takes one --sparsity") }
        let parts = sparsity.split(separator: ",")
        guard parts.count == 1, let rho = Double(parts[0].trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("--sparsity: stitching several tasks takes one value, e.g. 0.01")
        }
        guard rho > 0 && rho <= 1 else { throw GraftError.invalidSparsity(value: rho) }
        if ([base] + tasks.map(\.value)).contains(where: { $0.hasSuffix(".gguf") }) {
            throw ValidationError("graft writes a Hugging Face folder and reads Hugging Face folders: convert a GGUF first (weightsmith convert-gguf)")
        }
        let eligibility = try GraftEligibility(include: include)
        let inputs = ([base] + tasks.map(\.value) + heldOuts.map(\.value) + masks.map(\.value)).map { URL(fileURLWithPath: $0) }
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "graft")

        let quiet = self.quiet
        let log: (String) -> Void = { msg in if !quiet { FileHandle.standardError.write(Data("graft: \(msg)\n".utf8)) } }
        let baseModel = try PretrainedModel(path: base)
        let tok = baseModel.tokenizer
        var tunedModels: [TransformerModel] = [], stitchTasks: [GraftStitch.Task] = []
        var selections: [String] = []
        for (name, path) in tasks {
            let m = try TransformerModel.load(path: path)
            let pair = try GraftPair(base: baseModel.model, tuned: m, basePath: base, tunedPath: path, eligibility: eligibility)
            let mask: GraftMask
            if let saved = masks.first(where: { $0.name == name })?.value {
                mask = try GraftMask(pair: pair, delta: try SparseDeltaFile(locating: saved), path: saved)
                selections.append("\(name): the saved mask \(saved)")
            } else {
                mask = MagnitudeGraft.select(pair, count: try pair.keptCount(sparsity: rho))
                selections.append("\(name): magnitude top \(String(format: "%g", rho))")
            }
            tunedModels.append(m)
            stitchTasks.append(GraftStitch.Task(name: name, pair: pair, mask: mask))
        }
        try GraftStitch.check(stitchTasks)
        let selection = masks.isEmpty ? "the magnitude graft of each task at sparsity \(String(format: "%g", rho)) of the eligible parameters"
            : selections.joined(separator: "; ")
        let heldOutPairs: [(name: String, pairs: [([Int], [Int])])?] = try tasks.map { t in
            try heldOuts.first { $0.name == t.name }.map { h in
                (h.value, try PromptCompletion.readJSONL(URL(fileURLWithPath: h.value)).map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) })
            }
        }
        if dryRun {
            print("stitch of \(tasks.count) grafts onto \(base) (\(eligibility)): \(stitchTasks[0].pair.eligibleCount) eligible parameters")
            for (t, h) in zip(stitchTasks, heldOutPairs) {
                print("  \(t.name): k = \(t.mask.count)\(h.map { ", would score on \($0.pairs.count) pairs of \($0.name)" } ?? "")")
            }
            print("entries in more than one mask: \(GraftStitch.sharedEntries(stitchTasks))")
            print("would write \(output): config.json, tokenizer files, model.safetensors, " + tasks.map { "graft-\($0.name).safetensors" }.joined(separator: ", ") + ", stitch_report.json and README.md")
            return
        }
        // The stitched model: a second copy of the base, the masks stitched into it.
        let stitched = try TransformerModel.load(path: base)
        try GraftStitch.stitch(stitchTasks, into: stitched.parameters)
        let report = try GraftStitch.report(stitchTasks, base: baseModel.model, basePath: base, tuned: tunedModels, stitched: stitched,
                                            heldOut: heldOutPairs, selection: selection, progress: isatty(2) != 0 ? log : { _ in })
        if json {
            print(try report.json())
        } else {
            print("stitch of \(tasks.count) grafts onto \(base): \(selection); \(report.eligibleParameters) eligible parameters (\(report.eligibility))")
            print("k per task: " + stitchTasks.map { "\($0.name) \($0.mask.count)" }.joined(separator: ", ") + "; entries in more than one mask: \(report.sharedEntries) (averaged)")
            if heldOutPairs.contains(where: { $0 != nil }) { print(report.table()) }
        }
        let meta = ["format": "pt", "weightsmith.graft": "localize-and-stitch of " + stitchTasks.map { "\($0.name) k \($0.mask.count)" }.joined(separator: ", ")]
        try out.write { staging in
            try stitched.save(to: staging, sideFilesFrom: baseModel.directory, metadata: meta, allowNonFinite: nonFinite.allowNonFinite)
            for t in stitchTasks {
                let deltaMeta = ["weightsmith.graft.method": "stitch-task", "weightsmith.graft.sparsity": "\(Double(t.mask.count) / Double(t.pair.eligibleCount))",
                                 "weightsmith.graft.k": "\(t.mask.count)", "weightsmith.graft.eligible": "\(t.pair.eligibleCount)",
                                 "weightsmith.graft.base": base, "weightsmith.graft.tuned": t.pair.tunedPath]
                try t.mask.writeSparseDelta(t.pair, to: staging.appendingPathComponent("graft-\(t.name).safetensors"), metadata: deltaMeta,
                                            allowNonFinite: nonFinite.allowNonFinite)
            }
            try Data((try report.json() + "\n").utf8).write(to: staging.appendingPathComponent("stitch_report.json"))
            let files = (try FileManager.default.contentsOfDirectory(atPath: staging.path)).filter { !$0.hasPrefix(".") }.sorted() + ["README.md"]
            try Data(report.modelCard(files: files).utf8).write(to: staging.appendingPathComponent("README.md"))
        }
        if !json { print("wrote \(output)") }
    }
}

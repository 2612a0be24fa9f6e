import ArgumentParser
import Checkpoints
import Editing
import Foundation
import Transformer

struct FactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts",
        abstract: "Build fact-editing benchmarks from what a model knows.",
        subcommands: [FactsMakeCommand.self])
}

struct FactsMakeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make",
        abstract: "Write edit records (JSONL) for the facts of a table that MODEL answers correctly.",
        discussion: """
        For every (subject, object) pair of the chosen relations, MODEL continues the relation's first \
        template greedily; the fact is kept only when the continuation is exactly " object". Each kept \
        fact becomes one JSONL record (the flat format `edit --requests` and `edit-eval` read): prompt \
        (template with {}), subject, ground_truth, target_new (the object of another kept fact of the \
        relation), paraphrase_prompts (the other templates), neighborhood_prompts and \
        neighborhood_answers (other kept subjects of the relation, whose answers must not change), \
        generation_prompts, relation and split (train / validation / test, from a hash of relation and \
        subject). Deterministic for a model, table and seed.
        """)

    @Argument(help: "A Hugging Face folder.") var model: String
    @Option(name: .long, help: "Comma-separated relations (default: all of the table). Built in: capital, language, currency, continent, city, landmark, company, developer, author, element.") var relations: String?
    @Option(name: .long, help: "A JSON fact table instead of the built-in one ({\"relations\": [{name, templates, generation, pairs}]}).") var table: String?
    @Option(name: .shortAndLong, help: "Output JSONL file.") var output: String
    @Option(name: .long, help: "Fractions of train and validation (the rest is test).") var split = "0.3,0.1"
    @Option(name: .long, help: "Neighbourhood prompts per record.") var neighbours = 5
    @Option(name: .long, help: "Seed of the counterfactual targets and neighbours.") var seed: UInt64 = 0
    @Flag(name: .long, help: "Replace OUT when it is a previous weightsmith output.") var force = false
    @Flag(help: "Check the model, the table, the relations and OUT, print what would be asked and written, then stop (the model answers nothing, nothing is written).") var dryRun = false

    @OptionGroup var threading: ThreadsOption
    @Flag(name: .long, help: "Also write records of the facts the model does not answer, in the train split only, after the others (which are unchanged): more edits to train an editor such as MEND on, while validation and test keep only answered facts.") var unansweredForTraining = false
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        let fr = split.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard fr.count == 2, let tr = fr[0], let va = fr[1], tr >= 0, va >= 0, tr + va <= 1 else {
            throw ValidationError("--split wants two fractions TRAIN,VALIDATION summing to at most 1, got \"\(split)\"")
        }
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: [model, table].compactMap { $0 }.map { URL(fileURLWithPath: $0) },
                                           force: force, command: "facts make", kind: .file)
        let t = try table.map { try FactTable.read(URL(fileURLWithPath: $0)) } ?? .builtin
        let names = relations.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? t.relations.map(\.name)
        let chosen = try names.map { try t.relation($0) }
        let loaded = try PretrainedModel(path: model)
        if dryRun {
            for r in chosen { print("\(r.name): \(r.pairs.count) facts to ask (\(r.templates.count) templates)") }
            let total = chosen.reduce(0) { $0 + $1.pairs.count }
            print("split: train \(tr), validation \(va), the rest test; \(neighbours) neighbours per record, seed \(seed)")
            print("would write \(output): JSONL edit records, one per fact of the \(total) that \(model) answers correctly"
                  + (unansweredForTraining ? ", then one per fact it does not answer (train split only)" : ""))
            return
        }
        let progress = ProgressLine(label: "facts")
        let cands = try FactBenchmark.candidates(model: loaded.model, tokenizer: loaded.tokenizer, relations: chosen) { if !quiet { progress.update($0, $1) } }
        if !quiet { progress.finish() }
        var s = FactSettings()
        s.trainFraction = tr; s.validationFraction = va; s.neighbours = neighbours; s.seed = seed
        s.unansweredForTraining = unansweredForTraining
        let records = FactBenchmark.make(relations: chosen, candidates: cands, settings: s)
        for r in chosen {
            let c = cands.filter { $0.relation == r.name }
            let rec = records.filter { $0.relation == r.name }
            let extra = rec.filter { q in c.contains { $0.subject == q.subject && !$0.known } }.count
            print("\(r.name): model answers \(c.filter(\.known).count)/\(c.count); \(rec.count) records" + (unansweredForTraining ? " (\(extra) unanswered, train only)" : ""))
        }
        let counts = ["train", "validation", "test"].map { sp in "\(sp) \(records.filter { $0.split == sp }.count)" }
        print("\(records.count) records: " + counts.joined(separator: ", "))
        let text = try records.enumerated().map { try $0.element.jsonLine(caseID: $0.offset) }.joined(separator: "\n") + (records.isEmpty ? "" : "\n")
        try out.write { staging in try Data(text.utf8).write(to: staging) }
        print("wrote \(output)")
    }
}


import Checkpoints
import Foundation

/// Everything of the output folder but the tensors: config.json, tokenizer files, the recipe, the model card.
extension MergeExecutor {
    /// Everything of the output folder but the tensors: config.json, tokenizer files, the
    /// recipe (`writeSideFiles`), `extraFiles`, and the model card with the inputs' `hashes`.
    static func writeFinishingFiles(_ plan: MergePlan, hashes: [String: String], cardTitle: String, cardAppendix: String?,
                                    extraFiles: [String: [UInt8]], to dir: URL) throws {
        try writeSideFiles(plan, to: dir)
        for (name, bytes) in extraFiles.sorted(by: { $0.key < $1.key }) {
            try writeFileAtomically(bytes, to: dir.appendingPathComponent(name))
        }
        let card = ModelCard.render(plan, hashes: hashes, outputName: cardTitle) + (cardAppendix.map { "\n" + $0 } ?? "")
        try writeFileAtomically(Array(card.utf8), to: dir.appendingPathComponent("README.md"))
    }

    /// The files of a checkpoint (its shards and index).
    static func files(of c: Checkpoint) -> [String] {
        c.dataFiles
    }

    /// Files of the tokenizer source's folder that describe its vocabulary in a slow tokenizer's
    /// format; with a merged vocabulary (which only tokenizer.json holds) they are not copied.
    static let slowVocabularyFiles: Set<String> = ["tokenizer.model", "added_tokens.json", "merges.txt", "vocab.json"]

    /// The tokenizer files of the output: the tokenizer source's, with tokenizer.json and
    /// tokenizer_config.json of a merged vocabulary in place of its own (and its slow-tokenizer
    /// vocabulary files left out).
    static func tokenizerOutput(_ plan: MergePlan) -> [(name: String, bytes: [UInt8])] {
        let fm = FileManager.default
        let written = plan.vocabulary?.files
        var out: [(name: String, bytes: [UInt8])] = []
        let tokDir = plan.inputs[plan.tokenizerSource].checkpoint.directory
        for f in tokenizerFiles {
            if let bytes = written?[f] { out.append((f, bytes)); continue }
            if written != nil && slowVocabularyFiles.contains(f) { continue }
            if let tokDir, let data = fm.contents(atPath: tokDir.appendingPathComponent(f).path) { out.append((f, Array(data))) }
        }
        return out
    }

    /// config.json (layers, dtype, vocabulary updated), tokenizer files, the recipe.
    static func writeSideFiles(_ plan: MergePlan, to dir: URL) throws {
        let configInput = plan.inputs[plan.configSource].checkpoint
        if var config = try configInput.folderJSON("config.json") {
            if let n = plan.outputLayerCount { config = JSONText.setting(config, "num_hidden_layers", .integer(n)) }
            if let v = plan.outputVocabularyRows { config = JSONText.setting(config, "vocab_size", .integer(v)) }
            if let d = plan.jobs.first?.outDType {
                let key = config["dtype"] != nil && config["torch_dtype"] == nil ? "dtype" : "torch_dtype"
                config = JSONText.setting(config, key, .string(d.recipeName))
            }
            try writeFileAtomically(Array((JSONText.string(config) + "\n").utf8), to: dir.appendingPathComponent("config.json"))
        }
        for (name, bytes) in tokenizerOutput(plan) {
            try writeFileAtomically(bytes, to: dir.appendingPathComponent(name))
        }
        if let template = plan.chatTemplate { try ChatTemplates.install(template, in: dir) }
        try writeFileAtomically(Array(plan.recipe.yaml().utf8), to: dir.appendingPathComponent("merge_recipe.yml"))
    }
}

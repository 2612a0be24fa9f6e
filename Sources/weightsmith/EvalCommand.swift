import ArgumentParser
import Foundation
import Transformer

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model: JSONL prompt/completion pairs (NLL, perplexity, greedy exact match) or plain text (perplexity).")

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.")
    var model: String

    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.")
    var base: String?

    @Argument(help: "A .jsonl file of {\"prompt\", \"completion\"} objects, or any other file as plain text.")
    var data: String

    @Option(name: .long, help: "Window (tokens) for plain-text perplexity.")
    var window = 512

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    @OptionGroup var nonFinite: NonFiniteOption
    @Flag(help: "No progress or notes on stderr.") var quiet = false

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let evaluator = Evaluator(model: loaded.model, tokenizer: loaded.tokenizer)
        let url = URL(fileURLWithPath: data)
        let line = ProgressLine(label: data.hasSuffix(".jsonl") ? "eval: examples" : "eval: windows")
        let progress: (Int, Int) -> Void = { done, total in
            // Redrawn on a terminal; in a pipe or log a plain line every 30 s of a long run.
            guard !quiet else { return }
            line.step(done, total)
        }
        let result: EvaluationResult
        if data.hasSuffix(".jsonl") {
            let examples = try PromptCompletion.readJSONL(url)
            guard !examples.isEmpty else { throw ValidationError("\(data): no examples (the file has no JSON lines)") }
            result = try evaluator.evaluate(examples, progress: progress)
        } else {
            let text: String
            do { text = try String(contentsOf: url, encoding: .utf8) } catch {
                throw ValidationError("\(data): " + (FileManager.default.fileExists(atPath: data) ? "not UTF-8 text" : "no such file"))
            }
            guard text.contains(where: { !$0.isWhitespace }) else { throw ValidationError("\(data): no text to score (the file is empty)") }
            let context = loaded.model.config.maxPositions
            if window > context, !quiet {
                FileHandle.standardError.write(Data("note: --window \(window) is longer than the model's context (\(context) positions); windows of \(context) are scored\n".utf8))
            }
            result = try evaluator.perplexity(text: text, window: min(window, context), progress: progress)
        }
        _ = try result.checkedFinite(source: model)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(result), as: UTF8.self))
        } else {
            if let em = result.exactMatch {
                print(String(format: "examples %d, completion tokens %d, mean NLL %.4f, perplexity %.3f, exact match %.3f",
                             result.examples, result.scoredTokens, result.meanNLL, result.perplexity, em))
            } else {
                print(String(format: "windows %d, scored tokens %d, mean NLL %.4f, perplexity %.3f",
                             result.examples, result.scoredTokens, result.meanNLL, result.perplexity))
            }
        }
    }
}

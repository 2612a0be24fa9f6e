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

    func run() throws {
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let evaluator = Evaluator(model: loaded.model, tokenizer: loaded.tokenizer)
        let url = URL(fileURLWithPath: data)
        let tty = isatty(2) != 0
        let progress: (Int, Int) -> Void = { done, total in
            guard tty else { return }
            FileHandle.standardError.write(Data("\r\(done)/\(total)\(done == total ? "\n" : "")".utf8))
        }
        let result: EvaluationResult
        if data.hasSuffix(".jsonl") {
            result = try evaluator.evaluate(try PromptCompletion.readJSONL(url), progress: progress)
        } else {
            let text: String
            do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw ValidationError("\(data): \(error)") }
            result = try evaluator.perplexity(text: text, window: min(window, loaded.model.config.maxPositions), progress: progress)
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

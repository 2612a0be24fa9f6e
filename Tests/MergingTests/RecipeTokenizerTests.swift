import Checkpoints
import Foundation
import XCTest
@testable import Merging

/// `chat_template:` (auto, built-in names, literal templates), `tokenizer_source: union` /
/// `tokenizer:` blocks and the config.json pre-flight, on copies of the merge fixtures.
final class RecipeTokenizerTests: XCTestCase {
    static let root = Binary.root
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for m in ["base", "ft-a", "ft-b"] {
            try FileManager.default.copyItem(at: Self.root.appendingPathComponent("fixtures/merge/\(m)"), to: dir.appendingPathComponent(m))
        }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Sets `chat_template` in a copy's tokenizer_config.json.
    func setTemplate(_ model: String, _ template: String) throws {
        let url = dir.appendingPathComponent(model).appendingPathComponent("tokenizer_config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        config["chat_template"] = template
        try JSONSerialization.data(withJSONObject: config).write(to: url)
    }

    func plan(_ extra: String, models: [String] = ["base", "ft-a", "ft-b"], options: PlanOptions = PlanOptions()) throws -> MergePlan {
        let list = models.map { "  - model: \(dir.appendingPathComponent($0).path)\n" }.joined()
        return try MergePlanner.plan(RecipeParser.parse("merge_method: linear\nparameters: {weight: 1}\nmodels:\n\(list)\(extra)"), options: options)
    }

    /// The reproducer: an input with another activation and RoPE base merged with a
    /// Llama base. Every difference is reported together, naming both inputs and the key.
    func testConfigDifferencesAreReportedTogether() throws {
        let url = dir.appendingPathComponent("ft-b/config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        config["hidden_act"] = "gelu"
        config["rope_parameters"] = ["rope_theta": 500000.0, "rope_type": "default"]
        config["max_position_embeddings"] = 128
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        let p = try plan("")
        let config_ = p.problems.filter { $0.hasPrefix("config.json") }
        XCTAssertEqual(config_.count, 2, "\(p.problems)")
        XCTAssertTrue(config_.contains { $0.contains("hidden_act is \"gelu\"") && $0.contains("ft-b") && $0.contains("\"silu\" in") && $0.contains("base") })
        XCTAssertTrue(config_.contains { $0.contains("rope_theta is 500000") && $0.contains("10000") })
        XCTAssertTrue(p.notes.contains { $0.contains("max_position_embeddings is 128") })
        var allow = PlanOptions()
        allow.allowConfigMismatch = true
        let q = try plan("", options: allow)
        XCTAssertEqual(q.problems, [])
        XCTAssertEqual(q.notes.filter { $0.hasPrefix("config.json") }.count, 3)
        // Integer and floating spellings of one number agree.
        config["hidden_act"] = "silu"
        config["rope_parameters"] = ["rope_theta": 10000, "rope_type": "default"]
        config["rms_norm_eps"] = Double(Float(1e-5))  // as a GGUF stores it
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        XCTAssertEqual(try plan("").problems, [])
    }

    let t1 = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    let t2 = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}{% endfor %}"

    func testAutoTakesTheMostCommonTemplate() throws {
        try setTemplate("ft-a", t2)
        try setTemplate("ft-b", t2)
        try setTemplate("base", t1)
        let p = try plan("chat_template: auto\n")
        XCTAssertEqual(p.problems, [])
        XCTAssertEqual(p.chatTemplate, t2)
        XCTAssertTrue(p.notes.contains { $0.contains("auto chose the template of") && $0.contains("ft-a") }, "\(p.notes)")
        // A tie goes to the tokenizer source (the first model here).
        try setTemplate("ft-b", t1)
        XCTAssertEqual(try plan("chat_template: auto\n").chatTemplate, t1)
        // chat_template.jinja wins over tokenizer_config.json inside one folder.
        try Data((t2 + "\n").utf8).write(to: dir.appendingPathComponent("base/chat_template.jinja"))
        XCTAssertEqual(ChatTemplates.template(of: dir.appendingPathComponent("base")), t2)
    }

    func testAutoWithoutTemplatesSetsNothing() throws {
        let p = try plan("chat_template: auto\n")
        XCTAssertEqual(p.problems, [])
        XCTAssertNil(p.chatTemplate)
        XCTAssertTrue(p.notes.contains { $0.contains("no input declares a chat template") })
    }

    func testBuiltInNamesAndLiterals() throws {
        XCTAssertEqual(try plan("chat_template: chatml\n").chatTemplate, ChatTemplates.builtIn["chatml"])
        XCTAssertEqual(try plan("chat_template: \"\(t1)\"\n").chatTemplate, t1)
        let unknown = try plan("chat_template: vicuna\n").problems
        XCTAssertEqual(unknown.count, 1)
        XCTAssertTrue(unknown[0].contains("\"vicuna\"") && unknown[0].contains("chatml"), unknown[0])
        XCTAssertTrue(try plan("chat_template: \"{{ x }}\"\n").problems.first?.contains("too short") ?? false)
    }

    func testMergedFolderHoldsTheTemplate() throws {
        try setTemplate("base", t1)
        try Data("{\"chat_template\": \"old\"}".utf8).write(to: dir.appendingPathComponent("base/chat_template.json"))
        let out = dir.appendingPathComponent("out")
        _ = try MergeExecutor.run(plan("chat_template: llama3\n"), to: out, options: ExecutionOptions(progress: false))
        let jinja = try String(contentsOf: out.appendingPathComponent("chat_template.jinja"), encoding: .utf8)
        XCTAssertEqual(jinja, ChatTemplates.builtIn["llama3"])
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]
        XCTAssertNil(config["chat_template"], "the copied tokenizer_config.json must not contradict chat_template.jinja")
        XCTAssertEqual(config["tokenizer_class"] as? String, "PreTrainedTokenizerFast")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("chat_template.json").path))
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("merge_recipe.yml"), encoding: .utf8).contains("chat_template: llama3"))
        // The input is untouched.
        let input = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("base/tokenizer_config.json"))) as! [String: Any]
        XCTAssertEqual(input["chat_template"] as? String, t1)
    }

    func testUnionOfIdenticalVocabulariesIsTheBase() throws {
        for extra in ["tokenizer_source: union\n", "tokenizer:\n  source: union\n", "tokenizer: {}\n"] {
            let p = try plan(extra)
            XCTAssertEqual(p.problems, [], extra)
            XCTAssertEqual(p.tokenizerSource, 0, extra)
            XCTAssertTrue(p.notes.contains { $0.contains("same vocabulary") }, extra)
        }
    }

    /// A token beyond an input's vocab_size is taken as absent from it (so this union is still
    /// the base's tokenizer); an input without tokenizer.json cannot take part in a union.
    func testUnionNeedsEveryInputsTokenizer() throws {
        let url = dir.appendingPathComponent("ft-b/tokenizer.json")
        var tok = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var model = tok["model"] as! [String: Any]
        var vocab = model["vocab"] as! [String: Any]
        vocab["<extra_token>"] = vocab.count
        model["vocab"] = vocab
        tok["model"] = model
        try JSONSerialization.data(withJSONObject: tok).write(to: url)
        let p = try plan("tokenizer_source: union\n")
        XCTAssertEqual(p.problems, [])
        XCTAssertNil(p.vocabulary)
        XCTAssertTrue(p.notes.contains { $0.contains("≥ vocab_size 256 in") && $0.contains("left out of the union") && $0.contains("ft-b") }, "\(p.notes)")
        XCTAssertTrue(p.notes.contains { $0.contains("same vocabulary") }, "\(p.notes)")
        try FileManager.default.removeItem(at: url)
        let problems = try plan("tokenizer_source: union\n").problems
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(problems[0].contains("ft-b") && problems[0].contains("no tokenizer.json"), problems[0])
    }

    func testTokenizerBlockErrors() throws {
        func error(_ extra: String) -> String {
            do { _ = try plan(extra); return "" } catch { return String(describing: error) }
        }
        XCTAssertTrue(error("tokenizer_source: base\ntokenizer: {source: base}\n").contains("not both"))
        XCTAssertTrue(error("tokenizer:\n  source: union\n  tokens: [a, b]\n").contains("tokenizer.tokens"))
        XCTAssertTrue(error("tokenizer:\n  tokens: {\"<x>\": {source: {kind: one}}}\n").contains("tokenizer.tokens.<x>.source.kind"))
        XCTAssertTrue(error("tokenizer: {pad_to_multiple_of: 0}\n").contains("positive integer"))
        XCTAssertTrue(error("tokenizer: {sauce: union}\n").contains("unknown key"))
        let r = try RecipeParser.parse("""
            merge_method: linear
            models: [a]
            tokenizer:
              tokens:
                "<x>": {source: a, force: true}
                "<y>": {source: {kind: model_token, model: a, token_id: 3}}
                "<z>": {source: {kind: zero}}
                "<w>":
              pad_to_multiple_of: 64
            """)
        XCTAssertEqual(r.tokenizerSource, "union")
        XCTAssertEqual(r.padVocabularyToMultipleOf, 64)
        XCTAssertEqual(r.tokenEmbeddings.map(\.token), ["<x>", "<y>", "<z>", "<w>"])
        XCTAssertEqual(r.tokenEmbeddings.map(\.source), [.model("a"), .modelToken(model: "a", token: nil, tokenID: 3), .zero, nil])
        XCTAssertEqual(r.tokenEmbeddings.map(\.force), [true, false, false, false])
    }
}

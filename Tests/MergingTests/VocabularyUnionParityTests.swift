import Checkpoints
import Foundation
import XCTest
@testable import Merging
import Tensors

/// Merges of inputs with different vocabularies (fixtures/merge/vocab: `tokenizer_source: union`,
/// a model, base; `tokenizer.tokens:` overrides; `pad_to_multiple_of`) equal what mergekit-yaml
/// 0.1.5 wrote for the same recipes (scripts/make_vocab_union_fixtures.py):
///
/// - the same tokens, the tokenizer source's tokens at the same ids, every extra token at an id
///   in the same range and with the same added-token settings (mergekit numbers the union's extra
///   tokens in a hash map's order, different from run to run, so ids are compared through tokens);
/// - config.json `vocab_size` equal;
/// - every tensor equal to 1e-6 · max|mergekit|, vocabulary matrices row by row through the
///   token → id maps (padding rows directly).
final class VocabularyUnionParityTests: XCTestCase {
    static let root = Binary.root
    static let folder = root.appendingPathComponent("fixtures/merge/vocab/mergekit")
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static func recipes() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yml") }.sorted()
            .map { String($0.dropLast(4)) }
    }

    func recipeText(_ name: String) throws -> String {
        try String(contentsOf: Self.folder.appendingPathComponent(name + ".yml"), encoding: .utf8)
            .replacingOccurrences(of: "fixtures/merge/", with: Self.root.path + "/fixtures/merge/")
    }

    func merge(_ name: String) throws -> URL {
        let plan = try MergePlanner.plan(RecipeParser.parse(recipeText(name)))
        XCTAssertEqual(plan.problems, [], name)
        let out = dir.appendingPathComponent(name)
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false))
        return out
    }

    /// token → (id, added-token entry or nil) of a folder's tokenizer.json.
    static func vocabulary(_ folder: URL) throws -> [String: (id: Int, added: JSONValue?)] {
        let v = try XCTUnwrap(TokenizerVocabulary.read(folder))
        var out: [String: (id: Int, added: JSONValue?)] = [:]
        for (t, i) in v.ids { out[t] = (i, nil) }
        for a in v.added { out[a.content] = (a.id, a.entry) }
        return out
    }

    static func json(_ url: URL) throws -> JSONValue { try StrictJSONParser.parse(Array(Data(contentsOf: url))) }

    func testEveryRecipeMatchesMergekit() throws {
        let names = try Self.recipes()
        XCTAssertGreaterThanOrEqual(names.count, 6)
        var report: [String] = []
        for name in names {
            let ours = try merge(name)
            let theirs = Self.folder.appendingPathComponent(name)
            // Vocabulary.
            let a = try Self.vocabulary(ours), e = try Self.vocabulary(theirs)
            XCTAssertEqual(Set(a.keys), Set(e.keys), name)
            let recipe = try RecipeParser.parse(recipeText(name))
            let sourcePath = recipe.tokenizerSource.flatMap { $0 == "union" || $0 == "base" ? nil : $0 } ?? recipe.baseModel ?? recipe.models![0].model
            let sourceVocab = try Self.vocabulary(URL(fileURLWithPath: sourcePath))
            // A tokenizer-only donor has no config.json: every token of it is kept.
            let sourceConfig = URL(fileURLWithPath: sourcePath).appendingPathComponent("config.json")
            var kept = Int.max
            if FileManager.default.fileExists(atPath: sourceConfig.path) {
                guard case let .integer(k) = try XCTUnwrap(Self.json(sourceConfig)["vocab_size"]) else { return XCTFail("vocab_size") }
                kept = k
            }
            var idMap: [Int: Int] = [:]  // mergekit id -> ours
            for (t, x) in e {
                guard let y = a[t] else { continue }
                idMap[x.id] = y.id
                if let s = sourceVocab[t], s.id < kept || recipe.tokenizerSource != nil && recipe.tokenizerSource != "union" && recipe.tokenizerSource != "base" {
                    XCTAssertEqual(y.id, x.id, "\(name): token \(t) of the tokenizer source")
                }
                let flags = ["content", "single_word", "lstrip", "rstrip", "normalized", "special"]
                XCTAssertEqual(flags.map { y.added?[$0] }, flags.map { x.added?[$0] }, "\(name): added token \(t)")
            }
            XCTAssertEqual(Set(idMap.values), Set(idMap.keys), "\(name): the same id range")
            // config.json.
            XCTAssertEqual(try Self.json(ours.appendingPathComponent("config.json"))["vocab_size"],
                           try Self.json(theirs.appendingPathComponent("config.json"))["vocab_size"], name)
            // Tensors.
            let oc = try Checkpoint(path: ours.path), tc = try Checkpoint(path: theirs.path)
            XCTAssertEqual(Set(oc.tensorNames), Set(tc.tensorNames), name)
            var worstRelative: Float = 0
            for t in tc.tensorNames {
                let x = try oc.tensor(t), y = try tc.tensor(t)
                XCTAssertEqual(x.shape, y.shape, "\(name) \(t)")
                guard x.shape == y.shape else { continue }
                let scale = max(y.scalars.reduce(Float(0)) { max($0, abs($1)) }, 1e-30)
                var worst: Float = 0
                if TensorNaming.isVocabularyMatrix(t) {
                    let cols = y.shape[1]
                    for r in 0..<y.shape[0] {
                        let mine = idMap[r] ?? r  // padding rows
                        for j in 0..<cols { worst = max(worst, abs(x.scalars[mine * cols + j] - y.scalars[r * cols + j])) }
                    }
                } else {
                    worst = zip(x.scalars, y.scalars).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                }
                XCTAssertLessThanOrEqual(worst, 1e-6 * scale, "\(name) \(t)")
                worstRelative = max(worstRelative, worst / scale)
            }
            report.append("\(name): max relative difference \(worstRelative)")
        }
        print(report.joined(separator: "\n"))
    }

    /// The union's layout on its own terms: base tokens keep their ids, every other input's
    /// tokens follow, and an input lacking a token gets the rule's row.
    func testUnionRowsFollowMergekitsRules() throws {
        let root = Self.root.appendingPathComponent("fixtures/merge/vocab").path
        let text = """
        merge_method: linear
        base_model: \(root)/base
        models:
          - model: \(root)/base
            parameters: {weight: 1}
          - model: \(root)/ft-a
            parameters: {weight: 0}
          - model: \(root)/ft-b
            parameters: {weight: 0}
        tokenizer_source: union
        dtype: float32
        """
        let plan = try MergePlanner.plan(RecipeParser.parse(text))
        XCTAssertEqual(plan.problems, [])
        let v = try XCTUnwrap(plan.vocabulary)
        XCTAssertEqual(v.tokens.count, 265)
        XCTAssertEqual(Array(v.tokens[256...258]), ["th", "the", "<|endoftext|>"])
        XCTAssertEqual(Set(v.tokens[259...]), ["Ġt", "Ġthe", "in", "ing", "<|im_start|>", "<|im_end|>"])
        XCTAssertEqual(plan.outputVocabularyRows, 265)
        // Weight 1 on the base: its own rows, and for tokens it lacks the only owner's row.
        let out = dir.appendingPathComponent("out")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(progress: false))
        let merged = try Checkpoint(path: out.path).tensor("model.embed_tokens.weight")
        let base = try Checkpoint(path: root + "/base").tensor("model.embed_tokens.weight")
        let b = try Checkpoint(path: root + "/ft-b").tensor("model.embed_tokens.weight")
        let cols = 16
        XCTAssertEqual(Array(merged.scalars[0..<(259 * cols)]), Array(base.scalars[0..<(259 * cols)]))
        let ing = v.tokens.firstIndex(of: "ing")!
        XCTAssertEqual(Array(merged.scalars[(ing * cols)..<((ing + 1) * cols)]), Array(b.scalars[(258 * cols)..<(259 * cols)]))
        // The written tokenizer: base's, with the extra tokens added after its own.
        let tok = try XCTUnwrap(TokenizerVocabulary.read(out))
        XCTAssertEqual(tok.count, 265)
        XCTAssertEqual(tok.ids["ing"], ing)
        XCTAssertEqual(tok.modelTokens.count, 258)
    }

    func testTokenSettingsErrors() throws {
        let root = Self.root.appendingPathComponent("fixtures/merge/vocab").path
        func problems(_ tokens: String) throws -> [String] {
            let text = """
            merge_method: linear
            models:
              - model: \(root)/base
                parameters: {weight: 0.5}
              - model: \(root)/ft-a
                parameters: {weight: 0.5}
            tokenizer:
              source: union
              tokens:
            \(tokens)
            """
            return try MergePlanner.plan(RecipeParser.parse(text)).problems
        }
        XCTAssertTrue(try problems("    \"<|im_start|>\": {source: \(root)/base}").contains { $0.contains("does not have the token") })
        XCTAssertTrue(try problems("    \"<|im_start|>\": {source: elsewhere}").contains { $0.contains("not one of the recipe's models") })
        XCTAssertTrue(try problems("    \"<|im_start|>\": {force: true}").contains { $0.contains("needs a source") })
        XCTAssertTrue(try problems("    \"<|im_start|>\": {source: {kind: model_token, model: \(root)/base, token: nope}}").contains { $0.contains("not in") })
        XCTAssertTrue(try problems("    \"<|im_start|>\": {source: {kind: model_token, model: \(root)/base, token_id: 999}}").contains { $0.contains("out of range") })
        XCTAssertEqual(try problems("    \"<|im_start|>\": {source: {kind: zero}}"), [])
        XCTAssertThrowsError(try problems("    \"x\": {source: {kind: one}}"))
        XCTAssertThrowsError(try problems("    \"x\": {source: {kind: model_token, model: a}}"))
        XCTAssertThrowsError(try problems("    \"x\": {sauce: a}"))
    }

    /// A donor folder (not one of the recipe's models) without tokenizer.json is a pre-flight
    /// problem naming the key and the folder.
    func testDonorWithoutTokenizerJSONIsRefused() throws {
        let donor = dir.appendingPathComponent("donor-no-json")
        try FileManager.default.createDirectory(at: donor, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: donor.appendingPathComponent("tokenizer_config.json"))
        let text = try recipeText("source-donor-ties")
            .replacingOccurrences(of: Self.root.path + "/fixtures/merge/vocab/donor", with: donor.path)
        let plan = try MergePlanner.plan(RecipeParser.parse(text))
        XCTAssertTrue(plan.problems.contains { $0.contains("tokenizer_source") && $0.contains(donor.path) && $0.contains("tokenizer.json") },
                      "\(plan.problems)")
    }
}

@testable import Checkpoints
import Foundation
import XCTest

/// Regex fields of `adapter_config.json` (`target_modules` as a string, `rank_pattern` and
/// `alpha_pattern` keys): bounded, validated with typed errors naming file and field, compiled
/// once per config, and matching exactly as PEFT's rules compiled per query did.
final class AdapterConfigPatternTests: XCTestCase {
    static let family = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../fixtures/family").standardized

    /// The committed capital-lora config as a JSON object, with `edits` applied.
    func familyConfigJSON(_ edits: [String: Any]) throws -> [UInt8] {
        let url = Self.family.appendingPathComponent("capital-lora/adapter_config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { throw XCTSkip("fixtures/family is missing") }
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for (k, v) in edits { obj[k] = v }
        return Array(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]))
    }

    /// Module paths of the family base model's linear layers (tensor names without ".weight").
    func familyModules() throws -> [String] {
        let url = Self.family.appendingPathComponent("base/model.safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("fixtures/family is missing") }
        let names = try SafetensorsFile(url: url).tensorNames.filter { $0.hasSuffix(".weight") }.map { String($0.dropLast(7)) }
        XCTAssertGreaterThan(names.count, 10)
        return names
    }

    func expectPatternError(_ bytes: [UInt8], field: String, reasonContains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try AdapterConfig(jsonBytes: bytes, path: "/x/adapter_config.json"), file: file, line: line) { e in
            guard case let AdapterError.invalidPattern(p, f, _, r) = e else { return XCTFail("wrong error \(e)", file: file, line: line) }
            XCTAssertEqual(p, "/x/adapter_config.json", file: file, line: line)
            XCTAssertEqual(f, field, file: file, line: line)
            XCTAssertTrue(r.contains(reasonContains), r, file: file, line: line)
            let message = "\(e)"
            XCTAssertTrue(message.contains("/x/adapter_config.json") && message.contains("\"\(field)\""), message, file: file, line: line)
            XCTAssertLessThan(message.utf8.count, 400, "the message quotes only a prefix of the pattern", file: file, line: line)
        }
    }

    func testOverlongPatternIsRefusedNamingTheField() throws {
        let long = String(repeating: "(a|b)", count: 1000)   // 5000 characters, a valid regex
        XCTAssertGreaterThan(long.count, AdapterPatterns.maxPatternLength)
        expectPatternError(try familyConfigJSON(["target_modules": long]), field: "target_modules", reasonContains: "5000 characters")
        expectPatternError(try familyConfigJSON(["rank_pattern": [long: 4]]), field: "rank_pattern", reasonContains: "at most 4096")
        expectPatternError(try familyConfigJSON(["alpha_pattern": ["q_proj": 4, long: 4]]), field: "alpha_pattern", reasonContains: "at most 4096")
        // At the bound it is accepted.
        let atBound = String(repeating: "x", count: AdapterPatterns.maxPatternLength)
        XCTAssertNoThrow(try AdapterConfig(jsonBytes: try familyConfigJSON(["target_modules": atBound]), path: "/x/adapter_config.json"))
    }

    func testInvalidPatternIsATypedErrorNamingTheField() throws {
        for bad in ["(q_proj", "[a-", "*x", "a{2,1}"] {
            expectPatternError(try familyConfigJSON(["target_modules": bad]), field: "target_modules", reasonContains: "not a valid regular expression")
            expectPatternError(try familyConfigJSON(["rank_pattern": [bad: 2]]), field: "rank_pattern", reasonContains: "not a valid regular expression")
            expectPatternError(try familyConfigJSON(["alpha_pattern": [bad: 2]]), field: "alpha_pattern", reasonContains: "not a valid regular expression")
        }
        // Through the adapter loader: the error names the config file on disk.
        let dir = try makeTemporaryDirectory()
        try Data(try familyConfigJSON(["target_modules": "(q_proj"])).write(to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try AdapterConfig(contentsOf: dir.appendingPathComponent("adapter_config.json"))) {
            XCTAssertEqual(($0 as? AdapterError).map { if case let .invalidPattern(p, f, _, _) = $0 { return p + "|" + f } else { return "" } },
                           dir.appendingPathComponent("adapter_config.json").path + "|target_modules")
        }
    }

    /// PEFT's rules evaluated the way the code did before patterns were compiled once: one
    /// NSRegularExpression per query (the reference the compiled path must agree with).
    func referenceIsTarget(_ regex: String, _ module: String) -> Bool {
        guard let re = try? NSRegularExpression(pattern: "^(?:\(regex))$") else { return false }
        return re.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil
    }
    func referenceFirstMatch<V>(_ patterns: [(key: String, value: V)], _ module: String) -> V? {
        for (k, v) in patterns {
            guard let re = try? NSRegularExpression(pattern: "^(.*\\.)?(\(k))$") else { continue }
            if re.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil { return v }
        }
        return nil
    }

    func testValidRegexMatchesTheSameModulesAsBefore() throws {
        let modules = try familyModules() + ["lm_head", "q_proj", "model.layers.0.self_attn.q_proj.extra", "xq_proj"]
        let regex = #".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"#
        let rank: [String: Any] = ["layers\\.1\\..*_proj": 4, "v_proj": 2]
        let alpha: [String: Any] = ["down_proj": 40, "model\\.layers\\.0\\.self_attn\\.q_proj": 3]
        let viaRegex = try AdapterConfig(jsonBytes: try familyConfigJSON(["target_modules": regex, "rank_pattern": rank, "alpha_pattern": alpha]),
                                         path: "adapter_config.json")
        let viaNames = try AdapterConfig(jsonBytes: try familyConfigJSON([:]), path: "adapter_config.json")
        var targets = 0
        for m in modules {
            XCTAssertEqual(viaRegex.isTarget(m), referenceIsTarget(regex, m), m)
            XCTAssertEqual(viaRegex.isTarget(m), viaNames.isTarget(m) && m.contains("."), m)   // the list also accepts a bare name
            XCTAssertEqual(viaRegex.rank(for: m), referenceFirstMatch(viaRegex.rankPattern, m) ?? viaRegex.r, m)
            XCTAssertEqual(viaRegex.alpha(for: m), referenceFirstMatch(viaRegex.alphaPattern, m) ?? viaRegex.loraAlpha, m)
            if viaRegex.isTarget(m) { targets += 1 }
        }
        XCTAssertGreaterThan(targets, 0)
        XCTAssertFalse(viaRegex.isTarget("model.embed_tokens"))
        XCTAssertEqual(viaRegex.alpha(for: "model.layers.0.self_attn.q_proj"), 3)
        XCTAssertEqual(viaRegex.alpha(for: "model.layers.1.mlp.down_proj"), 40)
        XCTAssertEqual(viaRegex.rank(for: "model.layers.0.self_attn.v_proj"), 2)
        XCTAssertEqual(viaRegex.rank(for: "model.layers.0.self_attn.q_proj"), 8)
    }

    /// The compiled regexes follow the pattern fields when they are changed in code.
    func testChangingAPatternFieldRecompiles() throws {
        var c = AdapterConfig(r: 8, loraAlpha: 16, targetModules: .regex("a\\.q"), rankPattern: [("q", 2)])
        XCTAssertTrue(c.isTarget("a.q")); XCTAssertEqual(c.rank(for: "a.q"), 2)
        let copy = c
        c.targetModules = .regex("a\\.k"); c.rankPattern = [("k", 3)]; c.alphaPattern = [("k", 5)]
        XCTAssertFalse(c.isTarget("a.q")); XCTAssertTrue(c.isTarget("a.k"))
        XCTAssertEqual(c.rank(for: "a.q"), 8); XCTAssertEqual(c.rank(for: "a.k"), 3); XCTAssertEqual(c.alpha(for: "a.k"), 5)
        XCTAssertTrue(copy.isTarget("a.q")); XCTAssertEqual(copy.rank(for: "a.q"), 2)   // value semantics
        // A round trip through jsonText keeps the patterns working.
        let back = try AdapterConfig(jsonBytes: Array(c.jsonText().utf8), path: "t")
        XCTAssertEqual(back, c)
        XCTAssertTrue(back.isTarget("a.k")); XCTAssertEqual(back.rank(for: "x.k"), 3)
    }
}

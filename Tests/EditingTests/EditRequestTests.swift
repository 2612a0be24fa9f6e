import Foundation
import XCTest
@testable import Editing

final class EditRequestTests: XCTestCase {
    func testJSONLShapes() throws {
        let rs = try EditRequest.readJSONL(try fixtureURL("requests.jsonl"))
        XCTAssertEqual(rs.count, 3)
        XCTAssertEqual(rs[0].text, "The capital of France is")
        XCTAssertEqual(rs[0].target, " Rome")
        XCTAssertEqual(rs[0].groundTruth, " Paris")
        XCTAssertEqual(rs[0].paraphrases, ["France has its capital in"])
        XCTAssertEqual(rs[0].localityPrompts, ["The capital of Spain is"])
        XCTAssertEqual(rs[1].subject, "Japan")
        XCTAssertEqual(rs[1].target, " Lima")
        XCTAssertEqual(rs[1].paraphrases.count, 2)
        XCTAssertEqual(rs[1].localityPrompts, ["The capital of China is"])
        XCTAssertEqual(rs[2].text, "What is the capital of Egypt?")
        XCTAssertEqual(rs[2].target, " Oslo")
        XCTAssertEqual(rs[2].localityPrompts, ["The capital of Cuba is"])
    }

    func testBadRecordsNameTheLine() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).jsonl")
        try "{\"prompt\": \"A {} b\", \"target_new\": \"x\"}\n".write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try EditRequest.readJSONL(url)) { e in
            guard case let EditError.invalidRecord(_, line, reason) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(line, 1)
            XCTAssertTrue(reason.contains("template"), reason)
        }
    }

    func testSubjectGuess() {
        XCTAssertEqual(EditRequest(prompt: "The capital of France is", target: " Rome").resolvedSubject, "France")
        XCTAssertEqual(EditRequest(prompt: "The job of Olga Holm is", target: " chef").resolvedSubject, "Olga Holm")
        XCTAssertEqual(EditRequest(prompt: "what is this", target: " x").resolvedSubject, "what is this")
        // ROME and MEMIT key on the subject: a lowercase prompt gives nothing to guess from, and
        // they refuse it instead of keying on the prompt's last token.
        let lower = EditRequest(prompt: "the capital of france is", target: " Rome")
        XCTAssertNil(lower.guessedSubject)
        XCTAssertThrowsError(try lower.keySubject()) { XCTAssertTrue("\($0)".contains("cannot guess the subject of \"the capital of france is\""), "\($0)") }
        XCTAssertEqual(try EditRequest(prompt: "the capital of france is", subject: "france", target: " Rome").keySubject(), "france")
        XCTAssertEqual(try EditRequest(prompt: "The capital of France is", target: " Rome").keySubject(), "France")
        XCTAssertThrowsError(try EditRequest(prompt: "The capital of France is", subject: "Spain", target: " Rome").validate())
    }
}

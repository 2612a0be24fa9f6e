import Foundation
import Transformer
import XCTest
@testable import Editing

/// The fixture family's base model (fixtures/family/base, made by scripts/make_fixture_family.sh):
/// a 4-layer Llama pre-trained on templated facts (countries and capitals, people and jobs).
func familyBase() throws -> PretrainedModel {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let dir = root.appendingPathComponent("fixtures/family/base")
    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
        throw XCTSkip("fixtures/family/base is missing")
    }
    return try PretrainedModel(path: dir.path)
}

func familyCorpus() throws -> [String] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let text = try String(contentsOf: root.appendingPathComponent("fixtures/family/data/corpus.txt"), encoding: .utf8)
    return text.split(separator: "\n").map(String.init)
}

func fixtureURL(_ name: String) throws -> URL {
    guard let u = Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil) else { throw XCTSkip("missing fixture \(name)") }
    return u
}

let localityPrompts = ["The capital of Spain is", "The capital of Japan is", "Portugal has its capital in",
                       "Clara Jung is a singer from", "The job of Olga Holm is", "Norway is in"]

/// W k in Float64 for a Linear-layout (out, in) weight.
func apply(_ w: [Float], rows: Int, cols: Int, _ k: [Float]) -> [Double] {
    (0..<rows).map { o in (0..<cols).reduce(0.0) { $0 + Double(w[o * cols + $1]) * Double(k[$1]) } }
}

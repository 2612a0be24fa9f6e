import XCTest
import Foundation
import Checkpoints
import Tensors
@testable import Spectral

/// `spectrum MODEL`: weightwatcher's metrics, against references written by weightwatcher 0.7.7
/// itself (scripts/make_esd_fixtures.py), and properties of the power-law fit.
final class ModelSpectrumTests: XCTestCase {
    static let spectral = Paths.root.appendingPathComponent("fixtures/spectral")

    struct Reference: Decodable {
        var weightwatcher: String
        var layers: [[String: Value]]
        enum Value: Decodable {
            case number(Double), text(String)
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let x = try? c.decode(Double.self) { self = .number(x) } else { self = .text(try c.decode(String.self)) }
            }
            var number: Double { if case let .number(x) = self { return x }; return .nan }
            var text: String { if case let .text(s) = self { return s }; return "" }
        }
    }

    func reference(_ file: String) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.spectral.appendingPathComponent(file)))
    }

    /// Every analysed matrix and every column agrees with weightwatcher's DataFrame.
    func checkAgainst(model: String, referenceFile: String, file: StaticString = #filePath, line: UInt = #line) throws -> ModelSpectrumReport {
        let ref = try reference(referenceFile)
        XCTAssertEqual(ref.weightwatcher, "0.7.7")
        let report = try ModelSpectrum.analyze(try ModelReference.open(model), jobs: 2)
        let ours = Dictionary(uniqueKeysWithValues: report.layers.map { ($0.name, $0) })
        XCTAssertEqual(Set(ours.keys), Set(ref.layers.map { $0["name"]!.text }), "the same matrices", file: file, line: line)
        for r in ref.layers {
            let name = r["name"]!.text
            guard let o = ours[name] else { continue }
            func close(_ column: String, _ value: Double, tol: Double = 1e-9) {
                let want = r[column]!.number
                XCTAssertEqual(value, want, accuracy: tol * max(1, abs(want)), "\(name) \(column)", file: file, line: line)
            }
            close("alpha", o.alpha); close("xmin", o.xmin); close("xmax", o.xmax); close("D", o.D); close("sigma", o.sigma)
            close("lambda_max", o.lambdaMax); close("sv_max", o.svMax); close("sv_min", o.svMin, tol: 1e-7)
            close("norm", o.norm); close("log_norm", o.logNorm); close("spectral_norm", o.spectralNorm)
            close("log_spectral_norm", o.logSpectralNorm); close("alpha_weighted", o.alphaWeighted)
            close("log_alpha_norm", o.logAlphaNorm); close("stable_rank", o.stableRank); close("entropy", o.entropy)
            XCTAssertEqual(o.N, Int(r["N"]!.number), name, file: file, line: line)
            XCTAssertEqual(o.M, Int(r["M"]!.number), name, file: file, line: line)
            XCTAssertEqual(o.numPLSpikes, Int(r["num_pl_spikes"]!.number), "\(name) num_pl_spikes", file: file, line: line)
            XCTAssertEqual(o.matrixRank, Int(r["matrix_rank"]!.number), "\(name) matrix_rank", file: file, line: line)
            XCTAssertEqual(o.rankLoss, Int(r["rank_loss"]!.number), "\(name) rank_loss", file: file, line: line)
            XCTAssertEqual(o.weakRankLoss, Int(r["weak_rank_loss"]!.number), "\(name) weak_rank_loss", file: file, line: line)
            XCTAssertEqual(o.warning, r["warning"]!.text, "\(name) warning", file: file, line: line)
            XCTAssertEqual(o.status, r["status"]!.text, "\(name) status", file: file, line: line)
        }
        return report
    }

    func testFixtureModelMatchesWeightWatcher() throws {
        let report = try checkAgainst(model: Paths.root.appendingPathComponent("fixtures/family/base").path,
                                      referenceFile: "weightwatcher-family-base.json")
        XCTAssertEqual(report.layers.count, 29)
        // The summary is the mean over the matrices, as weightwatcher's get_summary().
        let mean = report.layers.map(\.alpha).reduce(0, +) / Double(report.layers.count)
        XCTAssertEqual(report.summary.alpha, mean, accuracy: 1e-12)
    }

    /// Heavy tail, exact rank loss (the SVD fallback), the small-sample rule, a wide matrix, skips.
    func testEdgeCasesMatchWeightWatcher() throws {
        let report = try checkAgainst(model: Self.spectral.appendingPathComponent("esd-cases.safetensors").path,
                                      referenceFile: "weightwatcher-esd-cases.json")
        let byName = Dictionary(uniqueKeysWithValues: report.layers.map { ($0.name, $0) })
        XCTAssertEqual(byName["low_rank.weight"]?.method, "gesdd", "8 zero singular values need the SVD")
        XCTAssertEqual(byName["low_rank.weight"]?.rankLoss, 8)
        XCTAssertEqual(byName["heavy.weight"]?.method, "gram")
        XCTAssertEqual(byName["wide.weight"].map { [$0.N, $0.M] }, [90, 30])
        XCTAssertEqual(report.skipped.map(\.name), ["thin.weight"])
        XCTAssertNil(byName["norm.weight"]); XCTAssertNil(byName["other.bias"])
    }

    /// Eigenvalues at the quantiles of a Pareto law with exponent 3 give α near 3; scaling every
    /// eigenvalue by c scales x_min by c and leaves α, D and the tail unchanged.
    func testPowerLawFitRecoversExponentAndIsScaleInvariant() throws {
        let n = 2000
        let alpha = 3.0
        // inverse CDF of p(x) ∝ x^(−α) on [1, ∞): x = (1 − u)^(−1/(α−1))
        let values = (0..<n).map { k in Foundation.pow(1 - (Double(k) + 0.5) / Double(n), -1 / (alpha - 1)) }
        let fit = try XCTUnwrap(PowerLawFit.fit(values))
        XCTAssertEqual(fit.alpha, alpha, accuracy: 0.1)
        XCTAssertLessThan(fit.D, 0.05)
        let scaled = try XCTUnwrap(PowerLawFit.fit(values.map { $0 * 37.5 }))
        XCTAssertEqual(scaled.alpha, fit.alpha, accuracy: 1e-9)
        XCTAssertEqual(scaled.D, fit.D, accuracy: 1e-9)
        XCTAssertEqual(scaled.tailCount, fit.tailCount)
        XCTAssertEqual(scaled.xmin, fit.xmin * 37.5, accuracy: 1e-9 * scaled.xmin)
        // A lighter tail (α = 5) fits a larger exponent.
        let lighter = (0..<n).map { k in Foundation.pow(1 - (Double(k) + 0.5) / Double(n), -1 / 4.0) }
        XCTAssertEqual(try XCTUnwrap(PowerLawFit.fit(lighter)).alpha, 5, accuracy: 0.2)
    }

    /// Hand-computed: the tail from x_min = 1 of {1, e, e²} (below 20 values, no tail of 8: the
    /// whole sample) has Σ ln(x/x_min) = 3, so α = 1 + (3 − 1)/3, and D from the three CDF steps.
    func testSmallSampleFallbackByHand() throws {
        let e = Foundation.exp(1.0)
        let fit = try XCTUnwrap(PowerLawFit.fit([e * e, 1, e]))
        let a = 1 + 2.0 / 3
        XCTAssertEqual(fit.alpha, a, accuracy: 1e-12)
        XCTAssertEqual(fit.xmin, 1)
        let steps = [0.0, 1, 2].map { k in abs(1 - Foundation.exp((1 - a) * k) - k / 3) }
        XCTAssertEqual(fit.D, steps.max()!, accuracy: 1e-12)
        XCTAssertNil(PowerLawFit.fit([1e-7, 2]), "values at or below 1e-5 are left out; one value is no fit")
    }

    func testGramEigenvaluesAreSquaredSingularValues() throws {
        for (m, n) in [(50, 20), (20, 50), (9000, 12)] {
            let w = random(m, n, seed: UInt64(m * 31 + n))
            let (values, method) = try LayerSpectrum.eigenvalues(of: w)
            XCTAssertEqual(method, "gram")
            let s = try singularValues64(w.scalars.map(Double.init), rows: m, cols: n).map { $0 * $0 }.reversed()
            for (x, y) in zip(values, s) { XCTAssertEqual(x, y, accuracy: 1e-10 * s.last!) }
        }
    }

    func testModulesFilterAndNoMatrices() throws {
        let base = try ModelReference.open(Paths.root.appendingPathComponent("fixtures/family/base").path)
        let r = try ModelSpectrum.analyze(base, modules: "mlp\\.down_proj")
        XCTAssertEqual(r.layers.count, 4)
        XCTAssertThrowsError(try ModelSpectrum.analyze(base, modules: "no-such-tensor")) { e in
            XCTAssertTrue("\(e)".contains("matches none"), "\(e)")
        }
    }
}

/// `compare --alpha` / `spectrum --alpha`: α before and after, consistent with `spectrum MODEL`.
final class AlphaComparisonTests: XCTestCase {
    func testAlphaBeforeAndAfterAgreesWithTheModelAloneReport() throws {
        let family = Paths.root.appendingPathComponent("fixtures/family")
        let base = try ModelReference.open(family.appendingPathComponent("base").path)
        let full = try FineTune.open(path: family.appendingPathComponent("capital-full").path, lora: false)
        let lora = try FineTune.open(path: family.appendingPathComponent("capital-lora").path, lora: true)
        let names = try SpectralAnalysis.selectMatrices(base: base, fineTunes: [lora, full], modules: nil)
        let c = try AlphaComparison.run(base: base, fineTunes: [lora, full], names: names, jobs: 2)
        XCTAssertEqual(c.rows.map(\.name), names)
        let alone = try ModelSpectrum.analyze(base)
        let tunedAlone = try ModelSpectrum.analyze(try ModelReference.open(family.appendingPathComponent("capital-full").path))
        let a0 = Dictionary(uniqueKeysWithValues: alone.layers.map { ($0.name, $0.alpha) })
        let a1 = Dictionary(uniqueKeysWithValues: tunedAlone.layers.map { ($0.name, $0.alpha) })
        var changed = 0
        for r in c.rows {
            XCTAssertEqual(r.base, a0[r.name]!, accuracy: 1e-12, r.name)
            XCTAssertEqual(r.tuned[1]!, a1[r.name]!, accuracy: 1e-12, r.name)
            let lo = try XCTUnwrap(r.tuned[0], "the LoRA adapts \(r.name)")
            if abs(lo - r.base) > 1e-6 { changed += 1 }
        }
        XCTAssertGreaterThan(changed, c.rows.count / 2, "the LoRA's update moves α in most matrices")
        XCTAssertEqual(c.decreased[1], c.rows.filter { $0.tuned[1]! < $0.base }.count)
        XCTAssertEqual(c.meanTuned[1], c.rows.map { $0.tuned[1]! }.reduce(0, +) / Double(c.rows.count), accuracy: 1e-12)
        XCTAssertTrue(c.text().contains("capital-lora: α fell in \(c.decreased[0]) of \(c.rows.count) matrices"))
    }
}

final class SpearmanTests: XCTestCase {
    /// Hand-computed: no ties, 1 − 6Σd²/(n(n²−1)) = 1 − 12/60; with a tie (mean ranks 1.5, 1.5),
    /// Pearson's r of the ranks = 4.5/√(4.5·5).
    func testSpearmanByHand() throws {
        XCTAssertEqual(try XCTUnwrap(ForgettingColumn.spearman([1, 2, 3, 4], [1, 3, 2, 4])), 0.8, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(ForgettingColumn.spearman([0, 0, 1, 2], [1, 2, 3, 4])), 4.5 / (4.5 * 5).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(ForgettingColumn.spearman([4, 3, 2, 1], [10, 20, 30, 40])), -1, accuracy: 1e-12)
        XCTAssertNil(ForgettingColumn.spearman([1, 1, 1, 1], [1, 2, 3, 4]), "a constant side has no rank correlation")
        let col = ForgettingColumn(data: ["t"], baseLoss: 1, epsilon: 0.5, fineTunes: [
            .init(label: "a", loss: 1.1, forgetting: 0.1, intruders: 0), .init(label: "b", loss: 1.3, forgetting: 0.3, intruders: 5),
            .init(label: "c", loss: 1.2, forgetting: 0.2, intruders: 2)])
        XCTAssertNil(col.spearman, "fewer than 4 fine-tunes")
        XCTAssertTrue(col.text().contains("at least 4"))
    }
}

/// `spectrum --tuned MERGED --ingredient T`: φ of each ingredient's top update subspace in the merged one.
final class IngredientSurvivalTests: XCTestCase {
    func testAnIngredientSurvivesWhollyInItselfAndPartlyInAnother() throws {
        let family = Paths.root.appendingPathComponent("fixtures/family")
        let base = try ModelReference.open(family.appendingPathComponent("base").path)
        let merged = try FineTune.open(path: family.appendingPathComponent("capital-full").path, label: "merged", lora: false)
        let same = try FineTune.open(path: family.appendingPathComponent("capital-full").path, label: "same", lora: false)
        let other = try FineTune.open(path: family.appendingPathComponent("continent-full").path, label: "other", lora: false)
        var o = SpectralOptions()
        o.cache = nil
        let report = try SpectralAnalysis.run(base: base, fineTunes: [merged, same, other], options: o, jobs: 2)
        let s = IngredientSurvival.from(report.overlaps, merged: "merged", ingredients: ["same", "other"])
        XCTAssertEqual(s.map(\.ingredient), ["same", "other"])
        XCTAssertEqual(s[0].matrices, 28)
        XCTAssertEqual(s[0].meanPhi, 1, accuracy: 1e-5, "an update's top subspace lies wholly in itself")
        for t in s[0].byModuleType { XCTAssertEqual(t.meanPhi, 1, accuracy: 1e-5, t.moduleType) }
        XCTAssertLessThan(s[1].meanPhi, 0.9)
        XCTAssertGreaterThan(s[1].meanPhi, s[1].chance, "two fine-tunes of one family share more than random subspaces")
        XCTAssertEqual(s[1].lowest.map(\.phi), s[1].lowest.map(\.phi).sorted())
        let perMatrix = report.overlaps.filter { $0.second == "other" && $0.first == "merged" }.map(\.overlap.phi)
        XCTAssertEqual(s[1].meanPhi, perMatrix.reduce(0, +) / Double(perMatrix.count), accuracy: 1e-12)
        XCTAssertTrue(IngredientSurvival.text(s, merged: "merged").contains("least of other in:"))
    }
}

final class ModelSpectrumPlotTests: XCTestCase {
    /// One panel per module type, one mark per matrix with a layer (filled inside 2-6, hollow red
    /// outside, a triangle above the scale), and the matrices without a layer listed.
    func testAlphaByLayerDrawsEveryMatrix() throws {
        let base = try ModelReference.open(Paths.root.appendingPathComponent("fixtures/family/base").path)
        let report = try ModelSpectrum.analyze(base)
        let svg = ModelSpectrumPlot.alphaByLayer(report)
        let layered = report.layers.filter { $0.layer != nil && $0.status == "success" }
        func count(_ s: String) -> Int { svg.components(separatedBy: s).count - 1 }
        XCTAssertEqual(count("<circle") + count("<path d=\"M"), layered.count)
        let outside = layered.filter { $0.alpha < 2 || $0.alpha > 6 }.count
        XCTAssertEqual(count("stroke=\"#d62728\" stroke-width=\"1.5\"") + count("<path d=\"M"), outside)
        for t in Set(layered.map(\.moduleType)) { XCTAssertTrue(svg.contains(">\(t)</text>"), t) }
        XCTAssertTrue(svg.contains("not in a layer: model.embed_tokens.weight"))
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
    }
}

import Foundation
import Testing
@testable import Spectral
import Tensors

@Suite struct DiagnosticsTests {
    @Test func rankStatisticsOnKnownSpectra() {
        let identity = [Float](repeating: 1, count: 16)
        #expect(abs(SpectrumStatistics.effectiveRank(identity) - 16) < 1e-9)
        #expect(abs(SpectrumStatistics.stableRank(identity) - 16) < 1e-9)
        #expect(abs(SpectrumStatistics.effectiveRank([3, 0, 0]) - 1) < 1e-12)
        #expect(abs(SpectrumStatistics.stableRank([3, 0, 0]) - 1) < 1e-12)
        // p = (2/3, 1/3): exp(H) with H = -(2/3 ln 2/3 + 1/3 ln 1/3).
        let h = -(2.0 / 3 * log(2.0 / 3) + 1.0 / 3 * log(1.0 / 3))
        #expect(abs(SpectrumStatistics.effectiveRank([2, 1]) - exp(h)) < 1e-7)
        #expect(abs(SpectrumStatistics.stableRank([2, 1]) - 1.25) < 1e-12)
        #expect(abs(SpectrumStatistics.energy(top: 1, of: [2, 1]) - 0.8) < 1e-7)
        #expect(SpectrumStatistics.rankForEnergy(0.9, of: [2, 1]) == 2)
        #expect(SpectrumStatistics.rankForEnergy(0.8, of: [2, 1]) == 1)
        #expect(SpectrumStatistics.effectiveRank([0, 0]) == 0)
    }

    @Test func subspaceOverlapIdentityAndChance() throws {
        let x = try qr(random(512, 8, seed: 1)).q
        let same = try subspaceOverlap(x, x, i: 8, j: 8)
        #expect(abs(same.phi - 1) < 1e-5)
        #expect(same.principalCosines.allSatisfy { abs($0 - 1) < 1e-4 })
        // Random 8-dim subspaces of R^512: E[φ] = 8/512.
        var phis = 0.0
        for s in 0..<20 {
            let y = try qr(random(512, 8, seed: 100 + UInt64(s))).q
            phis += try subspaceOverlap(x, y, i: 8, j: 8).phi
        }
        #expect(abs(phis / 20 - 8.0 / 512) < 0.006)
        // Orthogonal subspaces: φ = 0, Grassmann distance = sqrt(k) π/2.
        var e = [Float](repeating: 0, count: 4 * 4)
        e[0] = 1; e[5] = 1        // columns e1, e2 of R^4 in a (4, 2)... built as (4, 4) then sliced by i/j
        let a = Tensor(shape: [4, 2], scalars: [1, 0, 0, 1, 0, 0, 0, 0])
        let b = Tensor(shape: [4, 2], scalars: [0, 0, 0, 0, 1, 0, 0, 1])
        let o = try subspaceOverlap(a, b, i: 2, j: 2)
        #expect(o.phi == 0)
        #expect(abs(o.grassmannDistance - (2.0).squareRoot() * Double.pi / 2) < 1e-6)
    }

    @Test(arguments: [(40, 24, 5), (24, 40, 5), (30, 30, 8), (16, 50, 20)])
    func factoredSVDMatchesDense(m: Int, n: Int, r: Int) throws {
        let a = random(r, n, seed: 3), b = random(m, r, seed: 4)
        for scale: Float in [2, -0.5] {
            let low = try lowRankSVD(a: a, b: b, scale: scale)
            var dense = matmul(b, a)
            for i in dense.scalars.indices { dense.scalars[i] *= scale }
            let ref = try svd(dense)
            let k = min(r, m, n)
            #expect(low.s.count == k)
            for j in 0..<k { #expect(abs(low.s[j] - ref.s[j]) <= 1e-5 * ref.s[0]) }
            // The factored triplets reconstruct ΔW (orientation and sign of U).
            let rec = SVDResult(u: low.u, s: low.s, vt: low.vt).reconstructed()
            #expect(maxAbs(rec.scalars, dense.scalars) < 1e-4 * ref.s[0])
        }
    }

    /// Reference §F.2: W0 + λ v vᵀ with λ in 1.5..3 σ1 has exactly one intruder; noise and an
    /// identical model have none.
    @Test(arguments: [1.5, 2.0, 3.0])
    func plantedIntruder(lambdaOverSigma: Double) throws {
        let n = 256
        let w0 = random(n, n, seed: 0, std: 1 / Float(n).squareRoot())
        var rng = SeededRandom(seed: 99)
        let v = rng.unitVector(n)
        let s1 = try singularValues(w0)[0]
        var w = w0
        let lambda = Float(lambdaOverSigma) * s1
        for i in 0..<n { for j in 0..<n { w[i, j] += lambda * v[i] * v[j] } }
        var opts = SpectralOptions()
        opts.epsilons = [0.5]
        let r = try analyzeMatrix(name: "m.layers.0.q.weight", base: w0, tuned: .dense(w), options: opts).diagnostics
        #expect(r.intruders.count(at: 0.5) == 1)
        #expect(r.intruders.intruders.first?.rank == 0)
        #expect(r.intruders.maxCosines[1...].allSatisfy { $0 >= 0.5 })
        #expect(abs(r.effectiveRank - 1) < 1e-3)       // ΔW is rank one
        #expect(abs(r.relativeSpectral - lambdaOverSigma) < 1e-3)

        var noisy = w0
        let noise = random(n, n, seed: 5, std: 1e-3)
        for i in noisy.scalars.indices { noisy.scalars[i] += noise.scalars[i] }
        let rn = try analyzeMatrix(name: "x", base: w0, tuned: .dense(noisy), options: opts).diagnostics
        #expect(rn.intruders.count(at: 0.5) == 0)
        #expect(rn.intruders.maxCosines.allSatisfy { $0 > 0.9 })
        let ri = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w0), options: opts).diagnostics
        #expect(ri.intruders.count(at: 0.5) == 0)
        #expect(ri.frobeniusUpdate == 0 && ri.effectiveRank == 0)
    }

    /// Geometric base spectrum 10·0.9^i.
    @Test func plantedIntruderGeometricSpectrum() throws {
        let n = 128
        let u = try qr(random(n, n, seed: 11)).q, v = try qr(random(n, n, seed: 12)).q
        var us = u
        for i in 0..<n { for j in 0..<n { us[i, j] *= Float(10 * pow(0.9, Double(j))) } }
        let w0 = matmul(us, v, transposeB: true)
        var rng = SeededRandom(seed: 13)
        let x = rng.unitVector(n)
        var w = w0
        for i in 0..<n { for j in 0..<n { w[i, j] += 20 * x[i] * x[j] } }
        var opts = SpectralOptions(); opts.epsilons = [0.5, 0.3]
        let r = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: opts).diagnostics
        #expect(r.intruders.count(at: 0.5) == 1)
        #expect(r.intruders.intruders.map(\.rank) == [0])
    }

    /// Reference §F.3: the LoRA path (factors) and a dense file with the same matrix agree.
    @Test func loraPathEqualsDensePath() throws {
        let (m, n, r) = (96, 64, 4)
        let w0 = random(m, n, seed: 21, std: 0.1)
        let a = random(r, n, seed: 22, std: 0.3), b = random(m, r, seed: 23, std: 0.3)
        let scale: Float = 2
        var w = w0
        let ba = matmul(b, a)
        for i in w.scalars.indices { w.scalars[i] += scale * ba.scalars[i] }
        var opts = SpectralOptions(); opts.epsilons = [0.3, 0.5, 0.7]; opts.energyRank = r
        let lora = try analyzeMatrix(name: "x", base: w0, tuned: .lora(a: a, b: b, scale: scale, rank: r, alpha: 8), options: opts).diagnostics
        let dense = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: opts).diagnostics
        #expect(lora.intruders.counts == dense.intruders.counts)
        #expect(maxAbs(lora.intruders.maxCosines, dense.intruders.maxCosines) < 1e-4)
        for j in 0..<r { #expect(abs(lora.sigmaUpdate[j] - dense.sigmaUpdate[j]) <= 1e-5 * dense.sigmaUpdate[0] * 10) }
        #expect(abs(lora.effectiveRank - SpectrumStatistics.effectiveRank(Array(dense.sigmaUpdate.prefix(r)))) < 1e-3)
        #expect(abs(lora.relativeFrobenius - dense.relativeFrobenius) < 1e-5)
        #expect(lora.kind == .lora && lora.loraScale == 2 && lora.topEnergy > 0.999999)
    }

    @Test func randomizedPathAgreesWithExactAndFallsBack() throws {
        // Decaying spectrum: the randomized top-k passes its check and matches gesdd.
        let n = 200
        let u = try qr(random(n, n, seed: 31)).q, v = try qr(random(n, n, seed: 32)).q
        var us = u
        for i in 0..<n { for j in 0..<n { us[i, j] *= Float(pow(0.8, Double(j))) } }
        let w0 = matmul(us, v, transposeB: true)
        var w = w0
        let noise = random(n, n, seed: 33, std: 1e-3)
        for i in w.scalars.indices { w.scalars[i] += noise.scalars[i] }
        var exact = SpectralOptions(); exact.svdMethod = .exact
        var rand = SpectralOptions(); rand.svdMethod = .randomized
        let e = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: exact).diagnostics
        let r = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: rand).diagnostics
        #expect(r.tunedMethod.hasPrefix("randomized"))
        #expect(maxAbs(e.intruders.maxCosines, r.intruders.maxCosines) < 1e-3)
        #expect(maxAbs(e.sigmaTuned, r.sigmaTuned) < 1e-4)
        // A low-rank-dominated dense update: values by jobz = N, top vectors randomized and checked.
        var w2 = w0
        let lowA = random(3, n, seed: 35, std: 0.2), lowB = random(n, 3, seed: 36, std: 0.2)
        let ba = matmul(lowB, lowA)
        for i in w2.scalars.indices { w2.scalars[i] += ba.scalars[i] + 1e-4 * noise.scalars[i] }
        exact.energyRank = 3; rand.energyRank = 3
        let e2 = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w2), options: exact)
        let r2 = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w2), options: rand)
        #expect(r2.diagnostics.updateMethod.hasPrefix("singular values + randomized"))
        #expect(maxAbs(e2.diagnostics.sigmaUpdate, r2.diagnostics.sigmaUpdate) < 1e-5)
        let overlap = try subspaceOverlap(e2.updateU, r2.updateU, i: 3, j: 3)
        #expect(abs(overlap.phi - 1) < 1e-4)
        // Asking for 8 directions of a rank-3 update: directions 4-8 are noise with tiny gaps,
        // the check must refuse them and fall back to gesdd.
        rand.energyRank = 8
        let r3 = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w2), options: rand)
        #expect(r3.diagnostics.updateMethod.contains("randomized failed"))
        #expect(maxAbs(e2.diagnostics.sigmaUpdate, r3.diagnostics.sigmaUpdate) < 1e-5)
        // Flat spectrum (an orthogonal matrix: every σ = 1, no gaps): the check fails and gesdd is used.
        let g = try qr(random(n, n, seed: 34)).q
        let f = try analyzeMatrix(name: "x", base: g, tuned: .dense(g), options: rand).diagnostics
        #expect(f.tunedMethod.hasPrefix("exact selective") && f.tunedMethod.contains("randomized failed"))
    }

    /// The auto path (exact selective SVD) agrees with full gesdd (`--svd exact`) on W's top-k and
    /// on a dense update's spectrum and top-r directions, at one of SmolLM2's shapes, scaled down.
    @Test func selectiveSVDPathAgreesWithGesdd() throws {
        let (m, n) = (96, 32)
        let w0 = random(m, n, seed: 41)
        var w = w0
        let noise = random(m, n, seed: 42, std: 0.05)
        for i in w.scalars.indices { w.scalars[i] += noise.scalars[i] }
        var exact = SpectralOptions(); exact.svdMethod = .exact
        let auto = SpectralOptions()
        let e = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: exact)
        let a = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: auto)
        #expect(a.diagnostics.tunedMethod.hasPrefix("exact selective") && a.diagnostics.updateMethod.hasPrefix("exact selective"))
        #expect(e.diagnostics.tunedMethod == "gesdd" && e.diagnostics.updateMethod == "gesdd")
        let s1 = e.diagnostics.sigmaUpdate[0]
        #expect(a.diagnostics.sigmaUpdate.count == 32)
        for j in 0..<32 { #expect(abs(a.diagnostics.sigmaUpdate[j] - e.diagnostics.sigmaUpdate[j]) <= 1e-5 * s1) }
        for j in 0..<10 { #expect(abs(a.diagnostics.sigmaTuned[j] - e.diagnostics.sigmaTuned[j]) <= 1e-5 * e.diagnostics.sigmaTuned[0]) }
        #expect(maxAbs(a.diagnostics.intruders.maxCosines, e.diagnostics.intruders.maxCosines) < 1e-4)
        // Same vectors up to sign: |u_jᵀ u'_j| = 1 for W's top-k and ΔW's top-8.
        for (x, y, c) in [(a.tunedU, e.tunedU, 10), (a.updateU, e.updateU, 8)] {
            for j in 0..<c {
                var dot = 0.0
                for i in 0..<m { dot += Double(x[i, j]) * Double(y[i, j]) }
                #expect(abs(abs(dot) - 1) < 1e-4, "vector \(j)")
            }
        }
        #expect(abs(a.diagnostics.amplification!.factor - e.diagnostics.amplification!.factor) < 1e-4 * e.diagnostics.amplification!.factor)
    }

    /// §E.6 with values: W0 = diag(4, 3, 2, 1) (4 x 5), ΔW = 6 u vᵀ with u = (e1 + e2)/√2,
    /// v = (e1 + e3)/√2, so Uᵀ W0 V = (W0[0,0] + W0[0,2] + W0[1,0] + W0[1,2]) / 2 = 2 and the
    /// factor is 6 / 2 = 3; W0's top direction gives 4, random ones √30 / √20. Dense and LoRA agree.
    @Test func amplificationFactorWithValues() throws {
        var w0 = Tensor(zeros: [4, 5])
        for i in 0..<4 { w0[i, i] = Float(4 - i) }
        let h = Float(0.5).squareRoot()
        let b = Tensor(shape: [4, 1], scalars: [6 * h, 6 * h, 0, 0]), a = Tensor(shape: [1, 5], scalars: [h, 0, h, 0, 0])
        var w = w0
        let ba = matmul(b, a)
        for i in w.scalars.indices { w.scalars[i] += ba.scalars[i] }
        let dense = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w), options: SpectralOptions()).diagnostics
        let lora = try analyzeMatrix(name: "x", base: w0, tuned: .lora(a: a, b: b, scale: 1, rank: 1, alpha: 1), options: SpectralOptions()).diagnostics
        for d in [dense, lora] {
            let amp = try #require(d.amplification)
            #expect(amp.rank == 1)
            #expect(abs(amp.projection - 2) < 1e-5 && abs(amp.factor - 3) < 1e-5)
            #expect(abs(amp.baseTopProjection - 4) < 1e-6)
            #expect(abs(amp.randomProjection - (30.0 / 20.0).squareRoot()) < 1e-6)
        }
        // A zero update has none; the summary's mean skips it.
        let same = try analyzeMatrix(name: "x", base: w0, tuned: .dense(w0), options: SpectralOptions()).diagnostics
        #expect(same.amplification == nil)
        let summary = FineTuneSummary(matrices: [dense, same], epsilons: [0.5])
        #expect(abs(summary.meanAmplification! - 3) < 1e-5)
    }

    @Test func moduleNames() {
        #expect(parseModuleName("model.layers.12.self_attn.q_proj.weight") == (12, "q_proj"))
        #expect(parseModuleName("transformer.h.3.attn.c_attn.weight") == (3, "c_attn"))
        #expect(parseModuleName("lm_head.weight") == (nil, "lm_head"))
    }
}

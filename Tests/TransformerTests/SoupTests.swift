import Checkpoints
import Foundation
import Merging
import Tensors
import XCTest
@testable import Transformer
import Tokenizers

/// Soups on the committed fixture family (fixtures/family: a 0.8M-parameter Llama base and full
/// fine-tunes on three tasks, made by scripts/make_fixture_family.sh).
final class SoupTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let family = root.appendingPathComponent("fixtures/family")
    static let tasks = ["capital", "continent", "profession"]
    var fineTunes: [String] { Self.tasks.map { Self.family.appendingPathComponent("\($0)-full").path } }

    func heldOut(digestSuffix: String = "") throws -> [HeldOutSet] {
        let tok = try BPETokenizer(tokenizerJSON: Self.family.appendingPathComponent("base/tokenizer.json"))
        return try Self.tasks.map { t in
            let ex = try PromptCompletion.readJSONL(Self.family.appendingPathComponent("data/\(t)-heldout.jsonl"))
            return HeldOutSet(name: t, digest: t + digestSuffix,
                              tokenized: ex.map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) })
        }
    }

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: Self.family.appendingPathComponent("base/model.safetensors").path) else {
            throw XCTSkip("fixtures/family is missing")
        }
    }

    /// Ingredients of other shapes are refused when the scorer is made, before any candidate is
    /// scored, naming the file and tensor (and, for vocabulary matrices, what to do).
    func testIngredientsOfOtherShapesAreRefusedUpFront() throws {
        let vocab = Self.root.appendingPathComponent("fixtures/merge/vocab")
        let sets = try heldOut()
        XCTAssertThrowsError(try CandidateScorer(ingredients: ["base", "ft-a"].map { vocab.appendingPathComponent($0).path }, sets: sets)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("ft-a: tensor \"model.embed_tokens.weight\" has shape [262, 16], expected [259, 16]"), m)
            XCTAssertTrue(m.contains("the vocabularies differ"), m)
        }
        // A non-vocabulary matrix of another shape: the plain shape error.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-soup-shape-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let src = try Checkpoint(path: Self.family.appendingPathComponent("capital-full").path)
        let entries = src.tensorNames.map { n -> TensorEntry in
            let info = src.info(n)!
            return TensorEntry(name: n, dtype: .f32, shape: n.hasSuffix("layers.1.mlp.up_proj.weight") ? Shape([info.shape.dims[0] - 1, info.shape.dims[1]]) : info.shape)
        }
        let w = try SafetensorsWriter(url: tmp.appendingPathComponent("model.safetensors"), entries: entries)
        for e in entries {
            let t = try src.tensor(e.name)
            try w.write(e.name, e.shape == t.shape ? t : Tensor(shape: e.shape, scalars: Array(t.scalars.prefix(e.shape.elementCount))))
        }
        try w.finish()
        try FileManager.default.copyItem(at: Self.family.appendingPathComponent("capital-full/config.json"), to: tmp.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try CandidateScorer(ingredients: [fineTunes[0], tmp.path], sets: sets)) { e in
            XCTAssertEqual("\(e)", "\(tmp.path): tensor \"model.layers.1.mlp.up_proj.weight\" has shape [351, 128], expected [352, 128]")
        }
    }

    /// The in-memory candidate equals `merge --method linear` (the streaming executor) bit for bit.
    func testCandidateEqualsTheLinearMergeBitForBit() throws {
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: try heldOut())
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-soup-test-\(getpid())")
        defer { try? FileManager.default.removeItem(at: tmp) }
        for (k, weights) in [[1.0, 1, 1], [0.2, 0.5, 1.3], [1, 0, 2]].enumerated() {
            let out = tmp.appendingPathComponent("m\(k)")
            let recipe = Recipe(mergeMethod: "linear", models: zip(fineTunes, weights).map { p, w in
                RecipeSource(model: p, parameters: ParameterTable(["weight": .value(.number(w))]))
            })
            _ = try MergeExecutor.run(try MergePlanner.plan(recipe, options: PlanOptions()), to: out,
                                      options: ExecutionOptions(hashInputs: false, progress: false))
            try scorer.build(weights: weights)
            let merged = try Checkpoint(path: out.path)
            var differing = 0
            for e in scorer.model.layout.entries {
                let t = try merged.tensor(e.name)
                let p = scorer.model.parameters.pointer(e.name)
                for j in 0..<e.count where t.scalars[j].bitPattern != p[j].bitPattern { differing += 1 }
            }
            XCTAssertEqual(differing, 0, "weights \(weights)")
        }
    }

    /// A one-ingredient candidate scores exactly what `eval` prints for that model.
    func testSingleIngredientScoreEqualsEval() throws {
        let sets = try heldOut()
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: sets, workers: 1)
        for i in 0..<3 {
            let s = try scorer.score(weights: Soups.onehot(i, 3))
            let loaded = try PretrainedModel(path: fineTunes[i])
            for (k, set) in sets.enumerated() {
                let r = try Evaluator.evaluate(model: loaded.model, tokenized: set.tokenized)
                XCTAssertEqual(s.sets[k], r, "\(fineTunes[i]) on \(set.name)")
            }
        }
        // The value itself, as `weightsmith eval fixtures/family/capital-full data/capital-heldout.jsonl` prints it.
        let capital = try scorer.score(weights: [1, 0, 0])
        XCTAssertEqual(capital.sets[0].meanNLL, 0.7562, accuracy: 5e-5)
        XCTAssertEqual(capital.sets[0].exactMatch, 0.1)
    }

    /// Examples evaluated side by side give the same bits as one after the other.
    func testParallelEvaluationIsBitIdentical() throws {
        let sets = try heldOut()
        let loaded = try PretrainedModel(path: fineTunes[1])
        let all = sets.flatMap(\.tokenized)
        let serial = try Evaluator.evaluate(model: loaded.model, tokenized: all, workers: 1)
        for w in [2, 3, 7] {
            let r = try Evaluator.evaluate(model: loaded.model, tokenized: all, workers: w)
            XCTAssertEqual(r.meanNLL.bitPattern, serial.meanNLL.bitPattern, "workers \(w)")
            XCTAssertEqual(r, serial)
        }
    }

    /// The greedy soup never scores worse than its best ingredient on the data it was chosen
    /// with; by exact match on the fixtures it keeps continent and profession and drops capital
    /// (whose addition lowers the mean exact match from 25.6% to 16.7%).
    func testGreedySoupIsNeverWorseThanItsBestIngredient() throws {
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: try heldOut())
        for metric in CandidateScorer.Metric.allCases {
            let r = try Soups.greedy(scorer, metric: metric)
            let best = r.individual.map { $0.loss(metric) }.min()!
            XCTAssertLessThanOrEqual(r.score.loss(metric), best, "\(metric)")
            XCTAssertEqual(r.steps.count, 3)
            XCTAssertEqual(r.kept.first, r.order.first)
            // Each kept step did not get worse; each dropped one would have.
            var current = r.individual[r.order[0]].loss(metric)
            for s in r.steps.dropFirst() {
                XCTAssertEqual(s.kept, s.soup.loss(metric) <= current)
                if s.kept { current = s.soup.loss(metric) }
            }
            if metric == .em {
                XCTAssertEqual(r.order, [1, 2, 0])
                XCTAssertEqual(r.kept, [1, 2])
                XCTAssertEqual(r.weights, [0, 1, 1])
                XCTAssertEqual(r.score.sets.map { $0.exactMatch! }, [0, 0.6, 2.0 / 12])
            }
        }
    }

    /// A rerun reads every score from the cache; a changed input (digest) evaluates again.
    func testScoresAreCachedAndInvalidatedByContent() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-soup-cache-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("scores.json")
        let digests = ["a", "b", "c"]
        let first = try CandidateScorer(ingredients: fineTunes, sets: try heldOut(), cache: ScoreCache(url: url), digests: digests)
        let r1 = try Soups.greedy(first, metric: .em)
        XCTAssertGreaterThan(first.evaluations, 0)
        let second = try CandidateScorer(ingredients: fineTunes, sets: try heldOut(), cache: ScoreCache(url: url), digests: digests)
        let r2 = try Soups.greedy(second, metric: .em)
        XCTAssertEqual(second.evaluations, 0)
        XCTAssertEqual(r2.kept, r1.kept)
        XCTAssertEqual(r2.steps, r1.steps)
        let changed = try CandidateScorer(ingredients: fineTunes, sets: try heldOut(), cache: ScoreCache(url: url), digests: ["a", "b2", "c"])
        _ = try changed.score(weights: [0, 1, 0])
        XCTAssertEqual(changed.evaluations, 3)
        _ = try changed.score(weights: [1, 0, 0])  // the key holds every digest, so this is new too
        XCTAssertEqual(changed.evaluations, 6)
        let newData = try CandidateScorer(ingredients: fineTunes, sets: try heldOut(digestSuffix: "-v2"), cache: ScoreCache(url: url), digests: digests)
        _ = try newData.score(weights: [1, 1, 1])
        XCTAssertEqual(newData.evaluations, 3)
    }

    /// dL/dβ of the learned soup from the engine's backward pass matches central finite
    /// differences of the loss, per ingredient and per layer.
    func testLearnedSoupGradientMatchesFiniteDifferences() throws {
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: try heldOut())
        let examples = scorer.sets.map { Array($0.tokenized.prefix(5)) }
        for perLayer in [false, true] {
            let (names, groupOf) = Soups.groups(of: scorer.model, perLayer: perLayer)
            XCTAssertEqual(names.count, perLayer ? scorer.model.config.layers + 1 : 1)
            var beta = (0..<names.count).map { g in (0..<3).map { k in 0.3 * sin(Double(3 * g + k + 1)) } }
            let (_, grad) = try Soups.lossAndBetaGradient(scorer, beta: beta, groupOf: groupOf, sets: examples)
            let h = 0.02
            let probes = perLayer ? [(0, 0), (1, 2), (names.count - 1, 1)] : [(0, 0), (0, 1), (0, 2)]
            for (g, k) in probes {
                beta[g][k] += h
                let (lp, _) = try Soups.lossAndBetaGradient(scorer, beta: beta, groupOf: groupOf, sets: examples)
                beta[g][k] -= 2 * h
                let (lm, _) = try Soups.lossAndBetaGradient(scorer, beta: beta, groupOf: groupOf, sets: examples)
                beta[g][k] += h
                let fd = (lp - lm) / (2 * h)
                XCTAssertEqual(grad[g][k], fd, accuracy: 0.02 * abs(fd) + 2e-3, "perLayer \(perLayer) group \(g) ingredient \(k)")
            }
            // Softmax logits: the gradient of each group sums to zero.
            for row in grad { XCTAssertEqual(row.reduce(0, +), 0, accuracy: 1e-9) }
        }
    }

    /// A few steps of the learned soup lower the held-out loss below the uniform soup's.
    func testLearnedSoupLowersTheHeldOutLoss() throws {
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: try heldOut())
        var options = Soups.LearnedOptions()
        options.steps = 4
        let r = try Soups.learned(scorer, options: options)
        XCTAssertEqual(r.history.count, 5)
        XCTAssertLessThan(r.history[r.bestStep].loss, r.history[0].loss)
        // The objective is the score the table reports: at step 0 (uniform) it is the uniform soup's mean NLL.
        XCTAssertEqual(r.history[0].loss, try scorer.score(weights: [1, 1, 1]).meanNLL, accuracy: 1e-5)
        for row in r.coefficients { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-12) }
    }

    func testBadInputsAreTypedErrors() throws {
        XCTAssertThrowsError(try CandidateScorer(ingredients: [], sets: try heldOut()))
        XCTAssertThrowsError(try CandidateScorer(ingredients: fineTunes, sets: []))
        let scorer = try CandidateScorer(ingredients: fineTunes, sets: try heldOut())
        XCTAssertThrowsError(try scorer.build(weights: [1, 1]))
        XCTAssertThrowsError(try scorer.build(weights: [1, -1, 0]))
        // An adapter folder is an ingredient merged onto its base (ModelReference); a missing one is named.
        XCTAssertNoThrow(try CandidateScorer(ingredients: [fineTunes[0], Self.family.appendingPathComponent("base").path + "+"
                                                           + Self.family.appendingPathComponent("capital-lora").path], sets: try heldOut()))
        XCTAssertThrowsError(try CandidateScorer(ingredients: [fineTunes[0], Self.family.appendingPathComponent("capital-nothing").path],
                                                 sets: try heldOut())) { e in
            XCTAssertTrue("\(e)".contains("capital-nothing"), "\(e)")
        }
    }
}

extension SoupTests {
    /// A candidate with NaN/Inf parameters is refused, naming the ingredient that holds them
    /// (soup, compose --search and search score through this path); `allowNonFinite`
    /// (`--allow-nonfinite`) scores it instead, and the score is not finite.
    func testNonFiniteCandidateIsRefusedNamingTheIngredient() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("ws-soup-nan-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let nan = dir.appendingPathComponent("nan-capital")
        try NonFiniteTests.nanCopy(of: URL(fileURLWithPath: fineTunes[0]), to: nan)
        let scorer = try CandidateScorer(ingredients: [nan.path, fineTunes[1]], sets: try heldOut())
        XCTAssertNoThrow(try scorer.score(weights: [0, 1]), "an ingredient with weight 0 does not enter the candidate")
        XCTAssertThrowsError(try scorer.score(weights: [0.5, 0.5])) { e in
            guard case let .nonFinite(source, _, _, _)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertTrue(source.contains("nan-capital"), source)
        }
        scorer.allowNonFinite = true
        let s = try scorer.score(weights: [0.5, 0.5])
        XCTAssertFalse(s.sets.allSatisfy { $0.meanNLL.isFinite }, "\(s)")
    }
}

/// The λ search of `compose --search`: candidates θ = base + λ Σ c_i (x_i − base) built by the
/// scorer as the weights (1 − λΣc, λc_1, ...) score what the written task-arithmetic merge scores,
/// and the grid's best point is the best of the written merges.
final class LambdaSearchTests: XCTestCase {
    func testScorerCandidatesMatchWrittenTaskArithmeticMerges() throws {
        let fam = SoupTests.family
        guard FileManager.default.fileExists(atPath: fam.appendingPathComponent("base/model.safetensors").path) else { throw XCTSkip("no fixtures") }
        let tok = try BPETokenizer(tokenizerJSON: fam.appendingPathComponent("base/tokenizer.json"))
        let ex = try PromptCompletion.readJSONL(fam.appendingPathComponent("data/capital-heldout.jsonl"))
        let set = HeldOutSet(name: "capital", digest: "capital", tokenized: ex.map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) })
        let names = ["capital", "continent"], coefficients = [1.0, 0.5]
        let paths = [fam.appendingPathComponent("base").path] + names.map { fam.appendingPathComponent("\($0)-full").path }
        let scorer = try CandidateScorer(ingredients: paths, sets: [set])
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-lambda-\(getpid())")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var fromScorer: [Double] = [], fromMerge: [Double] = []
        for (k, l) in [0.0, 0.25, 0.5, 0.75, 1.0, 1.5].enumerated() {
            let s = try scorer.score(weights: [1 - l * 1.5] + coefficients.map { l * $0 })
            let plan = try TaskVectors.composePlan(base: paths[0], expression: "capital + 0.5*continent",
                                                   models: ["capital": paths[1], "continent": paths[2]], lambda: l)
            let out = tmp.appendingPathComponent("l\(k)")
            _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
            let m = try PretrainedModel(path: out.path)
            let r = try Evaluator.evaluate(model: m.model, tokenized: set.tokenized)
            XCTAssertEqual(s.meanNLL, r.meanNLL, accuracy: 1e-4 * max(1, r.meanNLL), "λ \(l)")
            fromScorer.append(s.meanNLL)
            fromMerge.append(r.meanNLL)
        }
        XCTAssertEqual(fromScorer.indices.min { fromScorer[$0] < fromScorer[$1] }, fromMerge.indices.min { fromMerge[$0] < fromMerge[$1] })
        // λ = 0 is the base itself.
        let base = try PretrainedModel(path: paths[0])
        XCTAssertEqual(fromScorer[0], try Evaluator.evaluate(model: base.model, tokenized: set.tokenized).meanNLL, accuracy: 1e-12)
    }
}

/// Packed evaluation (several examples in one pass, block-diagonal attention) against one
/// forward pass per example.
final class PackedEvaluationTests: XCTestCase {
    static let family = SoupTests.family

    func load() throws -> (PretrainedModel, [([Int], [Int])]) {
        guard FileManager.default.fileExists(atPath: Self.family.appendingPathComponent("base/model.safetensors").path) else {
            throw XCTSkip("fixtures/family is missing")
        }
        let loaded = try PretrainedModel(path: Self.family.appendingPathComponent("continent-full").path)
        let tok = loaded.tokenizer
        var all: [([Int], [Int])] = []
        for t in SoupTests.tasks {
            let ex = try PromptCompletion.readJSONL(Self.family.appendingPathComponent("data/\(t)-heldout.jsonl"))
            all += ex.map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) }
        }
        return (loaded, all)
    }

    /// Every requested row of a packed pass equals the same position of the sequence run alone.
    func testPackedLogitsEqualOneSequenceAtATime() throws {
        let (loaded, all) = try load()
        let model = loaded.model, V = model.config.vocabSize
        let seqs = all.prefix(7).map { $0.0 + $0.1 }
        // Rows: every position of every sequence, except that the third is asked for its last row only.
        var rows: [Int] = [], expected: [[Float]] = []
        var offset = 0
        for (k, s) in seqs.enumerated() {
            let alone = try model.forward([s])
            for t in (k == 2 ? [s.count - 1] : Array(0..<s.count)) {
                rows.append(offset + t)
                expected.append(Array(alone.scalars[t * V..<(t + 1) * V]))
            }
            offset += s.count
        }
        let packed = try model.forwardPacked(seqs, logitRows: rows)
        XCTAssertEqual(packed.shape, [rows.count, V])
        var worst: Float = 0
        for (i, e) in expected.enumerated() {
            for j in 0..<V { worst = max(worst, abs(packed.scalars[i * V + j] - e[j])) }
        }
        XCTAssertLessThan(worst, 1e-4, "largest logit difference")
        // A leak across sequences would be far larger: the same rows with the sequences' order
        // swapped must still match (the second sequence no longer follows the first).
        let swapped = try model.forwardPacked([seqs[1], seqs[0]], logitRows: [seqs[1].count - 1])
        let alone1 = try model.forward([seqs[1]])
        let last = seqs[1].count - 1
        for j in 0..<V { XCTAssertEqual(swapped.scalars[j], alone1.scalars[last * V + j], accuracy: 1e-4) }
    }

    /// Evaluation with packs of any size gives the same numbers (to rounding) as one example per pass,
    /// and with a fixed pack size the bits do not depend on the number of workers.
    func testPackSizeChangesOnlyRounding() throws {
        let (loaded, all) = try load()
        let one = try Evaluator.evaluate(model: loaded.model, tokenized: all, packTokens: 1)
        for size in [40, 128, 100_000] {
            let r = try Evaluator.evaluate(model: loaded.model, tokenized: all, packTokens: size)
            XCTAssertEqual(r.meanNLL, one.meanNLL, accuracy: 1e-6 * one.meanNLL, "pack \(size)")
            XCTAssertEqual(r.exactMatch, one.exactMatch, "pack \(size)")
            XCTAssertEqual(r.scoredTokens, one.scoredTokens)
            let serial = try Evaluator.evaluate(model: loaded.model, tokenized: all, workers: 1, packTokens: size)
            for w in [2, 5] {
                let p = try Evaluator.evaluate(model: loaded.model, tokenized: all, workers: w, packTokens: size)
                XCTAssertEqual(p.meanNLL.bitPattern, serial.meanNLL.bitPattern, "pack \(size), workers \(w)")
            }
        }
    }

    func testBadPackedInputsAreTypedErrors() throws {
        let (loaded, all) = try load()
        let s = all[0].0 + all[0].1
        XCTAssertThrowsError(try loaded.model.forwardPacked([s], logitRows: [s.count])) { e in XCTAssertTrue(e is ModelError) }
        XCTAssertThrowsError(try loaded.model.forwardPacked([s, []], logitRows: [0])) { e in XCTAssertTrue(e is ModelError) }
        let long = Array(repeating: s[1], count: loaded.model.config.maxPositions + 1)
        XCTAssertThrowsError(try loaded.model.forwardPacked([long], logitRows: [0])) { e in XCTAssertTrue(e is ModelError) }
        XCTAssertThrowsError(try Evaluator.evaluate(model: loaded.model, tokenized: [(long, [1])])) { e in
            XCTAssertTrue("\(e)".contains("context length"), "\(e)")
        }
    }
}

/// Forgetting by negation under a control constraint (Ilharco et al. 2023, §3), as
/// `compose --search --keep` uses it.
final class ForgettingSearchTests: XCTestCase {
    static func result(nll: Double, em: Double) -> EvaluationResult {
        EvaluationResult(examples: 10, scoredTokens: 40, meanNLL: nll, perplexity: Foundation.exp(nll), exactMatch: em)
    }
    /// Scores with set 0 = target, set 1 = control.
    static func score(target: Double, control: Double, targetEM: Double = 0, controlEM: Double = 0.5) -> SoupScore {
        SoupScore(sets: [result(nll: target, em: targetEM), result(nll: control, em: controlEM)])
    }

    func testPicksTheWorstTargetAmongFeasibleCandidates() throws {
        let reference = Self.score(target: 1.0, control: 1.0)
        let o = try ForgettingObjective(metric: .nll, targetSets: [0], controlSets: [("control", 1, 0.95)], reference: reference)
        // exp(−(1 + 0.05)) / exp(−1) = 0.9512 ≥ 0.95 (kept); 1.06 gives 0.9418 (not kept).
        let candidates = [reference, Self.score(target: 2, control: 1.02), Self.score(target: 3, control: 1.05),
                          Self.score(target: 9, control: 1.06), Self.score(target: 2.5, control: 0.7)]
        XCTAssertEqual(o.best(candidates), 2)
        XCTAssertEqual(o.verdict(candidates[2]).retained[0], Foundation.exp(-0.05), accuracy: 1e-12)
        XCTAssertFalse(o.verdict(candidates[3]).feasible)
        XCTAssertEqual(o.verdict(candidates[3]).objective, 1e6 * (1 + 0.95 - Foundation.exp(-0.06)), accuracy: 1e-3)
        XCTAssertEqual(o.verdict(candidates[2]).objective, -3)
        // A lower control loss than the reference's keeps more than 100%.
        XCTAssertGreaterThan(o.verdict(candidates[4]).retained[0], 1)
        // NaN never passes, whatever its target score.
        XCTAssertFalse(o.verdict(Self.score(target: 50, control: .nan)).feasible)
        XCTAssertFalse(o.verdict(Self.score(target: .nan, control: 1)).feasible)
        // Nothing feasible: nil.
        XCTAssertNil(o.best([Self.score(target: 5, control: 2)]))
    }

    func testExactMatchConstraintAndTies() throws {
        let reference = Self.score(target: 1, control: 1, targetEM: 0.8, controlEM: 0.6)
        let o = try ForgettingObjective(metric: .em, targetSets: [0], controlSets: [("control", 1, 0.95)], reference: reference)
        let c = [Self.score(target: 2, control: 1, targetEM: 0.2, controlEM: 0.6),
                 Self.score(target: 3, control: 1, targetEM: 0.2, controlEM: 0.6),  // same EM, larger NLL: preferred
                 Self.score(target: 4, control: 1, targetEM: 0.2, controlEM: 0.6),  // preferred again
                 Self.score(target: 4, control: 1, targetEM: 0.2, controlEM: 0.6),  // equal: the first stays
                 Self.score(target: 9, control: 1, targetEM: 0.0, controlEM: 0.5)]  // 0.5/0.6 = 83% < 95%
        XCTAssertEqual(o.best(c), 2)
        // A control set the reference scores 0 on by exact match has nothing to keep.
        XCTAssertThrowsError(try ForgettingObjective(metric: .em, targetSets: [0], controlSets: [("c", 1, 0.95)],
                                                     reference: Self.score(target: 1, control: 1, controlEM: 0)))
    }

    func testKeepSpecificationsAreParsedAndChecked() throws {
        let k = try ForgettingObjective.parseKeep("dir=x/control.jsonl=0.9")
        XCTAssertEqual(k.path, "dir=x/control.jsonl")
        XCTAssertEqual(k.fraction, 0.9)
        for bad in ["control.jsonl", "control.jsonl=", "=0.9", "c.jsonl=0", "c.jsonl=1.5", "c.jsonl=nan", "c.jsonl=-0.1"] {
            XCTAssertThrowsError(try ForgettingObjective.parseKeep(bad), bad)
        }
    }

    /// Negating the capital task vector from the capital fine-tune on the fixture family: the
    /// chosen λ keeps the continent control and every λ that forgets more does not; a task vector
    /// searched as BASE+VECTOR scores what the same combination of checkpoints scores.
    func testNegationOnTheFixtureFamily() throws {
        let fam = SoupTests.family
        guard FileManager.default.fileExists(atPath: fam.appendingPathComponent("base/model.safetensors").path) else { throw XCTSkip("no fixtures") }
        let tok = try BPETokenizer(tokenizerJSON: fam.appendingPathComponent("base/tokenizer.json"))
        let sets = try ["capital", "continent"].map { t in
            let ex = try PromptCompletion.readJSONL(fam.appendingPathComponent("data/\(t)-heldout.jsonl"))
            return HeldOutSet(name: t, digest: t, tokenized: ex.map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) })
        }
        let cap = fam.appendingPathComponent("capital-full").path, base = fam.appendingPathComponent("base").path
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-forget-\(getpid())")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let tv = tmp.appendingPathComponent("tv-cap")
        var options = ExecutionOptions(hashInputs: false, progress: false)
        options.metadata = [TaskVectors.kindKey: TaskVectors.kindValue]
        _ = try MergeExecutor.run(try TaskVectors.extractPlan(base: base, tuned: cap), to: tv, options: options)
        // θ = cap − λ(cap − base), once from the checkpoints and once from cap and cap + τ.
        let fromModels = try CandidateScorer(ingredients: [cap, base], sets: sets)
        let fromVector = try CandidateScorer(ingredients: [cap, "\(cap)+\(tv.path)"], sets: sets)
        let lambdas = stride(from: 0.0, through: 1.0, by: 0.125).map { $0 }
        var scores: [SoupScore] = []
        for l in lambdas {
            let a = try fromModels.score(weights: [1 - l, l])
            let b = try fromVector.score(weights: [1 + l, -l])
            for (x, y) in zip(a.sets, b.sets) { XCTAssertEqual(x.meanNLL, y.meanNLL, accuracy: 1e-4, "λ \(l)") }
            scores.append(a)
        }
        let o = try ForgettingObjective(metric: .nll, targetSets: [0], controlSets: [("continent", 1, 0.95)], reference: scores[0])
        let best = try XCTUnwrap(o.best(scores))
        let v = scores.map(o.verdict)
        XCTAssertEqual(v[0].retained[0], 1, accuracy: 1e-12)
        XCTAssertTrue(v[best].feasible)
        XCTAssertGreaterThan(v[best].targetNLL, v[0].targetNLL + 0.5, "the chosen λ forgets capitals")
        for k in v.indices where v[k].targetNLL > v[best].targetNLL { XCTAssertFalse(v[k].feasible, "λ \(lambdas[k]) forgets more and keeps the control") }
    }
}

import Foundation

/// Everything the backward pass needs from a training forward: per layer, the block's inputs,
/// normalised inputs with their statistics, post-RoPE q/k, v, attention probabilities and MLP
/// pre-activations; at the top, the final norm and the logits. Layers below the lowest one that
/// needs gradients share one scratch set (their activations are not kept).
///
/// Shapes (N = B·T rows): xIn, xn1, xMid, xn2: (N, C); q, att: (N, H·D); k, v: (N, KV·D);
/// probs: (H, n, n) per segment of n rows, one after the other; a1, a2, h: (N, I) — a1/a2 are
/// gate/up (gated MLP) or the fc pre-activation (plain, a2 unused), h the MLP hidden after the
/// activation. With a q/k norm: qPre, kPre (before it) and their per-head rstd (N·H), (N·KV);
/// with sandwich norms: aPre, mPre (N, C), the attention and MLP outputs before their post-norm,
/// and rstdA, rstdM (N). The head runs only on the M rows that are scored (`headRows`): xnF
/// (N, C) is the final norm of every row, xnS (M, C) its scored rows (empty when every row is
/// scored), logits and lse (M, V) and (M); with a final soft-cap the logits are the capped ones.
final class TrainingTape {
    final class Layer {
        let xIn, xn1, mean1, rstd1, q, k, v, probs, att, xMid, xn2, mean2, rstd2, a1, a2, h: Scratch
        let qPre, kPre, rstdQ, rstdK, aPre, rstdA, mPre, rstdM: Scratch
        var lora: [String: Scratch] = [:]   // x A^T (N, r) per adapted weight
        init(_ c: ModelConfig, _ d: BlockDescription, N: Int, probCount: Int) {
            let C = c.hiddenSize, I = c.intermediateSize
            xIn = Scratch(N * C); xn1 = Scratch(N * C); mean1 = Scratch(N); rstd1 = Scratch(N)
            q = Scratch(N * c.qDim); k = Scratch(N * c.kvDim); v = Scratch(N * c.kvDim)
            probs = Scratch(probCount); att = Scratch(N * c.qDim)
            xMid = Scratch(N * C); xn2 = Scratch(N * C); mean2 = Scratch(N); rstd2 = Scratch(N)
            a1 = Scratch(N * I); a2 = Scratch(d.gated ? N * I : 0); h = Scratch(N * I)
            let qk = d.qkNorm != nil
            qPre = Scratch(qk ? N * c.qDim : 0); kPre = Scratch(qk ? N * c.kvDim : 0)
            rstdQ = Scratch(qk ? N * c.heads : 0); rstdK = Scratch(qk ? N * c.kvHeads : 0)
            aPre = Scratch(d.postAttentionNorm != nil ? N * C : 0); rstdA = Scratch(d.postAttentionNorm != nil ? N : 0)
            mPre = Scratch(d.postMlpNorm != nil ? N * C : 0); rstdM = Scratch(d.postMlpNorm != nil ? N : 0)
        }
        func free() {
            [xIn, xn1, mean1, rstd1, q, k, v, probs, att, xMid, xn2, mean2, rstd2, a1, a2, h,
             qPre, kPre, rstdQ, rstdK, aPre, rstdA, mPre, rstdM].forEach { $0.free() }
            lora.values.forEach { $0.free() }
        }
    }

    let B: Int, T: Int, N: Int
    let tokens: [Int32]
    /// Every attention block: its first row, its length and where its probabilities start in `probs`.
    let segments: [(offset: Int, length: Int, probs: Int)]
    /// The rows the head runs on (a hard or a soft target), ascending; M = headRows.count.
    let headRows: [Int]
    /// Hard targets of the head rows (-1 for a soft one).
    let targets: [Int32]
    /// Soft targets by head row index (0..<M).
    let soft: [Int: [Float]]
    /// Position of each row within its segment.
    let positions: [Int32]
    /// First layer whose activations are kept.
    let firstKept: Int
    var layers: [Layer] = []
    let xFinal: Scratch, xnF: Scratch, xnS: Scratch, meanF: Scratch, rstdF: Scratch, logits: Scratch, lse: Scratch
    var lossSum = 0.0
    var M: Int { headRows.count }
    /// Whether the head runs on fewer rows than the pass has (then through `xnS`).
    var compactHead: Bool { headRows.count < N }

    init(config c: ModelConfig, block d: BlockDescription, batch: TrainingBatch, firstKept: Int) {
        B = batch.batchSize; T = batch.length; N = B * T
        tokens = batch.tokens.flatMap { $0.map { Int32($0) } }
        var segs: [(offset: Int, length: Int, probs: Int)] = []
        var pos: [Int32] = []
        pos.reserveCapacity(N)
        var probCount = 0
        for (b, row) in batch.segments.enumerated() {
            var o = b * T
            for n in row {
                segs.append((o, n, probCount))
                probCount += c.heads * n * n
                for i in 0..<n { pos.append(Int32(i)) }
                o += n
            }
        }
        segments = segs
        positions = pos
        let flatTargets = batch.targets.flatMap { $0 }
        let softByRow = Dictionary(uniqueKeysWithValues: batch.softTargets.map { ($0.sequence * batch.length + $0.position, $0.probabilities) })
        let rows = (0..<N).filter { flatTargets[$0] >= 0 || softByRow[$0] != nil }
        headRows = rows
        targets = rows.map { Int32(flatTargets[$0]) }
        var softByHead: [Int: [Float]] = [:]
        for (m, r) in rows.enumerated() { if let p = softByRow[r] { softByHead[m] = p } }
        soft = softByHead
        self.firstKept = firstKept
        let shared = firstKept > 0 ? Layer(c, d, N: N, probCount: probCount) : nil
        for l in 0..<c.layers { layers.append(l < firstKept ? shared! : Layer(c, d, N: N, probCount: probCount)) }
        let C = c.hiddenSize, M = rows.count
        xFinal = Scratch(N * C); xnF = Scratch(N * C); meanF = Scratch(N); rstdF = Scratch(N)
        xnS = Scratch(M < N ? M * C : 0)
        logits = Scratch(M * c.vocabSize); lse = Scratch(M)
    }

    func free() {
        var seen = Set<ObjectIdentifier>()
        for l in layers where seen.insert(ObjectIdentifier(l)).inserted { l.free() }
        [xFinal, xnF, xnS, meanF, rstdF, logits, lse].forEach { $0.free() }
    }
}

extension TransformerModel {
    /// A linear layer with its optional LoRA adapter: out = x W^T (+ b) + s (x A^T) B^T.
    func trainingLinear(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: String, bias: String?,
                        N: Int, I: Int, O: Int, layout: WeightLayout, lora: LoRAAdapters?, tape: TrainingTape.Layer) {
        let P = parameters
        linearForward(out: out, x: x, weight: P.pointer(weight), bias: bias.flatMap { P.optionalPointer($0) }, N: N, I: I, O: O, layout: layout)
        guard let lora, let (a, b, _) = lora.adapter(forWeight: weight) else { return }
        let r = lora.settings.rank
        let xa = tape.lora[weight] ?? Scratch(N * r)
        tape.lora[weight] = xa
        gemm(transA: false, transB: true, M: N, N: r, K: I, A: x, lda: I, B: a, ldb: I, C: xa.p, ldc: r)
        gemm(transA: false, transB: true, M: N, N: O, K: r, alpha: lora.scale, A: xa.p, lda: r, B: b, ldb: r, beta: 1, C: out, ldc: O)
    }

    /// The training forward: runs the batch from position 0, keeps what the backward needs in a
    /// tape, and returns it with the summed cross-entropy of the scored positions (`tape.lossSum`).
    func trainingForward(_ batch: TrainingBatch, lora: LoRAAdapters?, firstKept: Int) throws -> TrainingTape {
        let c = config
        for seq in batch.tokens { for t in seq where t < 0 || t >= c.vocabSize {
            throw ModelError.invalidInput("token id \(t) outside the vocabulary (0..<\(c.vocabSize))")
        } }
        for seq in batch.targets { for t in seq where t < -1 || t >= c.vocabSize {
            throw ModelError.invalidInput("target id \(t) outside the vocabulary (0..<\(c.vocabSize), or -1)")
        } }
        for s in batch.softTargets {
            let sum = s.probabilities.reduce(0.0) { $0 + Double($1) }
            guard s.probabilities.count == c.vocabSize, s.probabilities.allSatisfy({ $0 >= 0 && $0.isFinite }), abs(sum - 1) < 1e-3 else {
                throw ModelError.invalidInput("soft target at sequence \(s.sequence), position \(s.position): needs \(c.vocabSize) finite probabilities ≥ 0 summing to 1 (got \(s.probabilities.count) summing to \(sum))")
            }
        }
        let longest = batch.segments.flatMap { $0 }.max() ?? 0
        if longest > c.maxPositions {
            throw ModelError.invalidInput("\(longest) positions exceed the model's context length of \(c.maxPositions) (max_position_embeddings); shorten the input")
        }
        let d = block
        let tape = TrainingTape(config: c, block: d, batch: batch, firstKept: firstKept)
        let N = tape.N, C = c.hiddenSize, I = c.intermediateSize
        let x = Scratch(N * C), proj = Scratch(N * C)
        let fused = Scratch(N * fusedWidth)
        defer { [x, proj, fused].forEach { $0.free() } }

        embed(out: x.p, tokens: tape.tokens, positions: tape.positions)
        for l in 0..<c.layers {
            let L = tape.layers[l]
            let p = { (m: String) in d.name(l, m) }
            let linear: LinearStep = { out, x, w, b, n, i, o, layout in
                self.trainingLinear(out: out, x: x, weight: w, bias: b, N: n, I: i, O: o, layout: layout, lora: lora, tape: L)
            }
            L.xIn.p.update(from: x.p, count: N * C)
            norm(out: L.xn1.p, x: x.p, p(d.inputNorm), N: N, C: C, mean: L.mean1.p, rstd: L.rstd1.p)
            projectQKV(q: L.q.p, k: L.k.p, v: L.v.p, x: L.xn1.p, layer: l, N: N, fused: fused.p, linear)
            if let (qn, kn) = d.qkNorm {
                L.qPre.p.update(from: L.q.p, count: N * c.qDim)
                L.kPre.p.update(from: L.k.p, count: N * c.kvDim)
                norm(out: L.q.p, x: L.qPre.p, p(qn), N: N * c.heads, C: c.headDim, rstd: L.rstdQ.p)
                norm(out: L.k.p, x: L.kPre.p, p(kn), N: N * c.kvHeads, C: c.headDim, rstd: L.rstdK.p)
            }
            if d.rotary {
                let f = invFreq(layer: l)
                ropeForward(x: L.q.p, positions: tape.positions, heads: c.heads, D: c.headDim, invFreq: f)
                ropeForward(x: L.k.p, positions: tape.positions, heads: c.kvHeads, D: c.headDim, invFreq: f)
            }
            let options = attentionOptions(layer: l)
            for (o, n, po) in tape.segments {
                attentionForward(out: L.att.p + o * c.qDim, probs: L.probs.p + po, q: L.q.p + o * c.qDim,
                                 keys: L.k.p + o * c.kvDim, values: L.v.p + o * c.kvDim, T: n, start: 0, H: c.heads, KV: c.kvHeads, D: c.headDim,
                                 options: options)
            }
            linear(proj.p, L.att.p, p(d.attentionOutput) + ".weight", p(d.attentionOutput) + ".bias", N, c.qDim, C, d.weightLayout)
            if let pn = d.postAttentionNorm {
                L.aPre.p.update(from: proj.p, count: N * C)
                norm(out: proj.p, x: L.aPre.p, p(pn), N: N, C: C, rstd: L.rstdA.p)
            }
            addInPlace(x.p, proj.p, N * C)
            L.xMid.p.update(from: x.p, count: N * C)
            norm(out: L.xn2.p, x: x.p, p(d.mlpNorm), N: N, C: C, mean: L.mean2.p, rstd: L.rstd2.p)
            mlpHidden(h: L.a1.p, up: L.a2.p, x: L.xn2.p, layer: l, N: N, fused: fused.p, linear)
            if d.gated { gatedForward(out: L.h.p, gate: L.a1.p, up: L.a2.p, count: N * I, activation: c.activation) } else {
                L.h.p.update(from: L.a1.p, count: N * I)
                geluForward(L.h.p, count: N * I, activation: c.activation)
            }
            linear(proj.p, L.h.p, p(d.mlpOutput) + ".weight", p(d.mlpOutput) + ".bias", N, I, C, d.weightLayout)
            if let pn = d.postMlpNorm {
                L.mPre.p.update(from: proj.p, count: N * C)
                norm(out: proj.p, x: L.mPre.p, p(pn), N: N, C: C, rstd: L.rstdM.p)
            }
            addInPlace(x.p, proj.p, N * C)
            residualEdit?(l, x.p, N)
        }
        tape.xFinal.p.update(from: x.p, count: N * C)
        norm(out: tape.xnF.p, x: x.p, d.finalNorm, N: N, C: C, mean: tape.meanF.p, rstd: tape.rstdF.p)
        // The head only where a target is scored (prompt and padding rows have no loss).
        let M = tape.M
        if tape.compactHead {
            for (m, r) in tape.headRows.enumerated() { (tape.xnS.p + m * C).update(from: tape.xnF.p + r * C, count: C) }
        }
        if M > 0 {
            linearForward(out: tape.logits.p, x: tape.compactHead ? tape.xnS.p : tape.xnF.p, weight: parameters.pointer(outputName), bias: nil,
                          N: M, I: C, O: c.vocabSize, layout: .outIn)
            if let cap = c.finalSoftcap { softcapInPlace(tape.logits.p, count: M * c.vocabSize, cap: cap) }
        }
        tape.lossSum = crossEntropyForward(lse: tape.lse.p, logits: tape.logits.p, targets: tape.targets, N: M, V: c.vocabSize, soft: tape.soft)
        return tape
    }
}

import Foundation

/// Everything the backward pass needs from a training forward: per layer, the block's inputs,
/// normalised inputs with their statistics, post-RoPE q/k, v, attention probabilities and MLP
/// pre-activations; at the top, the final norm and the logits. Layers below the lowest one that
/// needs gradients share one scratch set (their activations are not kept).
///
/// Shapes (N = B·T rows): xIn, xn1, xMid, xn2: (N, C); q, att: (N, H·D); k, v: (N, KV·D);
/// probs: (H, n, n) per segment of n rows, one after the other; a1, a2, h: (N, I) — a1/a2 are
/// gate/up (SwiGLU) or the fc pre-activation (GELU, a2 unused), h the MLP hidden after the
/// activation. The head runs only on the M rows that are scored (`headRows`): xnF (N, C) is the
/// final norm of every row, xnS (M, C) its scored rows (empty when every row is scored), logits
/// and lse (M, V) and (M).
final class TrainingTape {
    final class Layer {
        let xIn, xn1, mean1, rstd1, q, k, v, probs, att, xMid, xn2, mean2, rstd2, a1, a2, h: Scratch
        var lora: [String: Scratch] = [:]   // x A^T (N, r) per adapted weight
        init(_ c: ModelConfig, N: Int, probCount: Int) {
            let C = c.hiddenSize, I = c.intermediateSize
            xIn = Scratch(N * C); xn1 = Scratch(N * C); mean1 = Scratch(N); rstd1 = Scratch(N)
            q = Scratch(N * c.qDim); k = Scratch(N * c.kvDim); v = Scratch(N * c.kvDim)
            probs = Scratch(probCount); att = Scratch(N * c.qDim)
            xMid = Scratch(N * C); xn2 = Scratch(N * C); mean2 = Scratch(N); rstd2 = Scratch(N)
            a1 = Scratch(N * I); a2 = Scratch(c.family == .llama ? N * I : 0); h = Scratch(N * I)
        }
        func free() {
            [xIn, xn1, mean1, rstd1, q, k, v, probs, att, xMid, xn2, mean2, rstd2, a1, a2, h].forEach { $0.free() }
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

    init(config c: ModelConfig, batch: TrainingBatch, firstKept: Int) {
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
        let shared = firstKept > 0 ? Layer(c, N: N, probCount: probCount) : nil
        for l in 0..<c.layers { layers.append(l < firstKept ? shared! : Layer(c, N: N, probCount: probCount)) }
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
        if c.family == .gpt2 && longest > c.maxPositions {
            throw ModelError.invalidInput("GPT-2 supports at most \(c.maxPositions) positions, got \(longest)")
        }
        if let w = c.slidingWindow, longest > w {
            throw ModelError.invalidInput("\(longest) positions exceed the sliding window \(w), which is not implemented")
        }
        let tape = TrainingTape(config: c, batch: batch, firstKept: firstKept)
        let N = tape.N, C = c.hiddenSize, I = c.intermediateSize
        let P = parameters
        let x = Scratch(N * C), proj = Scratch(N * C)
        let qkv = c.family == .gpt2 ? Scratch(N * 3 * C) : Scratch(0)
        defer { [x, proj, qkv].forEach { $0.free() } }

        embeddingForward(out: x.p, tokens: tape.tokens, table: P.pointer(embeddingName), C: C)
        if c.family == .gpt2 { positionEmbeddingForward(out: x.p, positions: tape.positions, table: P.pointer("transformer.wpe.weight"), C: C) }

        for l in 0..<c.layers {
            let L = tape.layers[l]
            L.xIn.p.update(from: x.p, count: N * C)
            switch c.family {
            case .llama:
                let p = "model.layers.\(l)."
                rmsNormForward(out: L.xn1.p, rstd: L.rstd1.p, x: x.p, weight: P.pointer(p + "input_layernorm.weight"), N: N, C: C, eps: c.normEps)
                trainingLinear(out: L.q.p, x: L.xn1.p, weight: p + "self_attn.q_proj.weight", bias: p + "self_attn.q_proj.bias", N: N, I: C, O: c.qDim, layout: .outIn, lora: lora, tape: L)
                trainingLinear(out: L.k.p, x: L.xn1.p, weight: p + "self_attn.k_proj.weight", bias: p + "self_attn.k_proj.bias", N: N, I: C, O: c.kvDim, layout: .outIn, lora: lora, tape: L)
                trainingLinear(out: L.v.p, x: L.xn1.p, weight: p + "self_attn.v_proj.weight", bias: p + "self_attn.v_proj.bias", N: N, I: C, O: c.kvDim, layout: .outIn, lora: lora, tape: L)
                ropeForward(x: L.q.p, positions: tape.positions, heads: c.heads, D: c.headDim, invFreq: invFreq)
                ropeForward(x: L.k.p, positions: tape.positions, heads: c.kvHeads, D: c.headDim, invFreq: invFreq)
            case .gpt2:
                let p = "transformer.h.\(l)."
                layerNormForward(out: L.xn1.p, mean: L.mean1.p, rstd: L.rstd1.p, x: x.p, weight: P.pointer(p + "ln_1.weight"), bias: P.pointer(p + "ln_1.bias"), N: N, C: C, eps: c.normEps)
                linearForward(out: qkv.p, x: L.xn1.p, weight: P.pointer(p + "attn.c_attn.weight"), bias: P.pointer(p + "attn.c_attn.bias"), N: N, I: C, O: 3 * C, layout: .inOut)
                for n in 0..<N {
                    (L.q.p + n * C).update(from: qkv.p + n * 3 * C, count: C)
                    (L.k.p + n * C).update(from: qkv.p + n * 3 * C + C, count: C)
                    (L.v.p + n * C).update(from: qkv.p + n * 3 * C + 2 * C, count: C)
                }
            }
            for (o, n, po) in tape.segments {
                attentionForward(out: L.att.p + o * c.qDim, probs: L.probs.p + po, q: L.q.p + o * c.qDim,
                                 keys: L.k.p + o * c.kvDim, values: L.v.p + o * c.kvDim, T: n, start: 0, H: c.heads, KV: c.kvHeads, D: c.headDim)
            }
            switch c.family {
            case .llama:
                let p = "model.layers.\(l)."
                trainingLinear(out: proj.p, x: L.att.p, weight: p + "self_attn.o_proj.weight", bias: p + "self_attn.o_proj.bias", N: N, I: c.qDim, O: C, layout: .outIn, lora: lora, tape: L)
                addInPlace(x.p, proj.p, N * C)
                L.xMid.p.update(from: x.p, count: N * C)
                rmsNormForward(out: L.xn2.p, rstd: L.rstd2.p, x: x.p, weight: P.pointer(p + "post_attention_layernorm.weight"), N: N, C: C, eps: c.normEps)
                trainingLinear(out: L.a1.p, x: L.xn2.p, weight: p + "mlp.gate_proj.weight", bias: p + "mlp.gate_proj.bias", N: N, I: C, O: I, layout: .outIn, lora: lora, tape: L)
                trainingLinear(out: L.a2.p, x: L.xn2.p, weight: p + "mlp.up_proj.weight", bias: p + "mlp.up_proj.bias", N: N, I: C, O: I, layout: .outIn, lora: lora, tape: L)
                swigluForward(out: L.h.p, gate: L.a1.p, up: L.a2.p, count: N * I)
                trainingLinear(out: proj.p, x: L.h.p, weight: p + "mlp.down_proj.weight", bias: p + "mlp.down_proj.bias", N: N, I: I, O: C, layout: .outIn, lora: lora, tape: L)
                addInPlace(x.p, proj.p, N * C)
            case .gpt2:
                let p = "transformer.h.\(l)."
                linearForward(out: proj.p, x: L.att.p, weight: P.pointer(p + "attn.c_proj.weight"), bias: P.pointer(p + "attn.c_proj.bias"), N: N, I: C, O: C, layout: .inOut)
                addInPlace(x.p, proj.p, N * C)
                L.xMid.p.update(from: x.p, count: N * C)
                layerNormForward(out: L.xn2.p, mean: L.mean2.p, rstd: L.rstd2.p, x: x.p, weight: P.pointer(p + "ln_2.weight"), bias: P.pointer(p + "ln_2.bias"), N: N, C: C, eps: c.normEps)
                linearForward(out: L.a1.p, x: L.xn2.p, weight: P.pointer(p + "mlp.c_fc.weight"), bias: P.pointer(p + "mlp.c_fc.bias"), N: N, I: C, O: I, layout: .inOut)
                L.h.p.update(from: L.a1.p, count: N * I)
                geluForward(L.h.p, count: N * I, activation: c.activation)
                linearForward(out: proj.p, x: L.h.p, weight: P.pointer(p + "mlp.c_proj.weight"), bias: P.pointer(p + "mlp.c_proj.bias"), N: N, I: I, O: C, layout: .inOut)
                addInPlace(x.p, proj.p, N * C)
            }
            residualEdit?(l, x.p, N)
        }
        tape.xFinal.p.update(from: x.p, count: N * C)
        switch c.family {
        case .llama: rmsNormForward(out: tape.xnF.p, rstd: tape.rstdF.p, x: x.p, weight: P.pointer("model.norm.weight"), N: N, C: C, eps: c.normEps)
        case .gpt2: layerNormForward(out: tape.xnF.p, mean: tape.meanF.p, rstd: tape.rstdF.p, x: x.p, weight: P.pointer("transformer.ln_f.weight"), bias: P.pointer("transformer.ln_f.bias"), N: N, C: C, eps: c.normEps)
        }
        // The head only where a target is scored (prompt and padding rows have no loss).
        let M = tape.M
        if tape.compactHead {
            for (m, r) in tape.headRows.enumerated() { (tape.xnS.p + m * C).update(from: tape.xnF.p + r * C, count: C) }
        }
        if M > 0 {
            linearForward(out: tape.logits.p, x: tape.compactHead ? tape.xnS.p : tape.xnF.p, weight: P.pointer(outputName), bias: nil,
                          N: M, I: C, O: c.vocabSize, layout: .outIn)
        }
        tape.lossSum = crossEntropyForward(lse: tape.lse.p, logits: tape.logits.p, targets: tape.targets, N: M, V: c.vocabSize, soft: tape.soft)
        return tape
    }
}

import Foundation
import Tensors

/// What one linear layer saw in a backward pass (the u and delta of MEND, Mitchell et al. 2022):
/// its input u (N, I) and the gradient of the loss with respect to its output delta (N, O), so
/// that dL/dW = delta^T u. The buffers are views into the pass's own activations, valid only
/// during the hook call (copy what you keep). `weight` is the weight's parameter name.
public struct LinearGradientRecord {
    public let weight: String
    public let rows: Int
    public let inFeatures: Int
    public let outFeatures: Int
    public let u: UnsafeBufferPointer<Float>
    public let delta: UnsafeBufferPointer<Float>
}

/// Where a backward pass accumulates, and what it skips.
///
/// `model` holds gradients of model parameters; its layout may be any subset of the model's
/// (same names and shapes, its own offsets): tensors not in it are frozen and their weight
/// products are skipped, and the pass stops descending below the lowest trainable tensor.
/// `lora` holds gradients of the adapters' factors (layout: a subset of `LoRAAdapters.parameters`).
public struct GradientSink {
    public var model: ParameterBuffer?
    public var lora: ParameterBuffer?
    /// Optional 0/1 mask with `model`'s layout: after the pass, `model` is multiplied by it, so
    /// only masked entries accumulate (idempotent across accumulated passes).
    public var mask: ParameterBuffer?
    /// Called for every linear layer the pass reaches, top to bottom (fused GPT-2 qkv as one).
    public var linearHook: ((LinearGradientRecord) -> Void)?
    public init(model: ParameterBuffer? = nil, lora: ParameterBuffer? = nil, mask: ParameterBuffer? = nil,
                linearHook: ((LinearGradientRecord) -> Void)? = nil) {
        self.model = model; self.lora = lora; self.mask = mask; self.linearHook = linearHook
    }
}

extension TransformerModel {
    /// Position of a parameter in the forward order (`BlockDescription`): 0 the embeddings,
    /// 1 + S·l + i for step i of the S steps of layer l, then the final norm and the head. The
    /// backward computes the input gradients of a step only when something earlier is trainable.
    func stage(of name: String) -> Int { stages[name] ?? 0 }

    /// Mean cross-entropy over the scored positions and its gradients, accumulated (+=) into
    /// `sink`, scaled by `lossScale` (1 / scored tokens gives the gradient of the mean; pass
    /// 1 / (tokens of all micro-batches) to accumulate). Returns the summed (unscaled) NLL.
    ///
    /// The pass's matrix products run on the process's whole thread budget
    /// (`BLASThreads.serialThreads`; one thread with `--threads 1` or `OPENBLAS_NUM_THREADS=1`),
    /// the previous BLAS thread count restored after: training loops call this one pass at a
    /// time. OpenBLAS's count is process-wide, so do not call it from parallel workers of your own.
    @discardableResult
    public func accumulateGradients(_ batch: TrainingBatch, into sink: GradientSink, lora: LoRAAdapters? = nil, lossScale: Float) throws -> Double {
        try BLASThreads.withThreads(BLASThreads.serialThreads) {
            try accumulateGradientsSerial(batch, into: sink, lora: lora, lossScale: lossScale)
        }
    }

    func accumulateGradientsSerial(_ batch: TrainingBatch, into sink: GradientSink, lora: LoRAAdapters?, lossScale: Float) throws -> Double {
        var names = sink.model.map { $0.layout.entries.map(\.name) } ?? []
        names += sink.lora.map { $0.layout.entries.map(\.name) } ?? []
        for n in sink.model?.layout.entries ?? [] where layout[n.name]?.shape != n.shape {
            throw ModelError.invalidInput("gradient tensor \(n.name) is not a parameter of this model with shape \(n.shape.dims)")
        }
        if let mask = sink.mask, mask.layout != sink.model?.layout {
            throw ModelError.invalidInput("the gradient mask must have the layout of the gradient buffer")
        }
        let lowest = names.map(stage(of:)).min() ?? Int.max
        let firstKept = lowest == Int.max ? config.layers : max(0, (lowest - 1) / stepCount)
        let tape = try trainingForward(batch, lora: lora, firstKept: lowest == 0 ? 0 : firstKept)
        defer { tape.free() }
        if lowest != Int.max { backward(tape, sink: sink, lora: lora, lowest: lowest, lossScale: lossScale) }
        if let mask = sink.mask, let g = sink.model { g.multiply(by: mask) }
        return tape.lossSum
    }

    /// Loss (mean NLL of the scored positions) and its gradients, added to `sink`.
    public func lossAndGradients(_ batch: TrainingBatch, into sink: GradientSink, lora: LoRAAdapters? = nil) throws -> Double {
        let n = batch.scoredTokens
        guard n > 0 else { throw ModelError.invalidInput("the batch has no scored positions") }
        return try accumulateGradients(batch, into: sink, lora: lora, lossScale: 1 / Float(n)) / Double(n)
    }

    /// The backward pass, the training forward replayed in reverse, step by step of the block
    /// description; it returns as soon as nothing below the current step trains.
    func backward(_ tape: TrainingTape, sink: GradientSink, lora: LoRAAdapters?, lowest: Int, lossScale: Float) {
        let c = config, d = block
        let N = tape.N, M = tape.M, C = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize, S = stepCount
        let P = parameters, G = sink.model
        func g(_ name: String) -> UnsafeMutablePointer<Float>? { G?.optionalPointer(name) }
        // Linear backward with its adapter and the hook; dx only when something below trains.
        func linear(_ dx: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ weight: String, _ bias: String?,
                    _ I: Int, _ O: Int, _ layout: WeightLayout, _ L: TrainingTape.Layer?, headStage: Int? = nil, rows: Int? = nil) {
            let N = rows ?? N
            // A tied head's weight is the embedding (stage 0) but it runs at the top.
            let s = headStage ?? stage(of: weight)
            sink.linearHook?(LinearGradientRecord(weight: weight, rows: N, inFeatures: I, outFeatures: O,
                                                  u: UnsafeBufferPointer(start: x, count: N * I), delta: UnsafeBufferPointer(start: dOut, count: N * O)))
            let wantDx = lowest < s
            linearBackward(dx: wantDx ? dx : nil, dWeight: g(weight), dBias: bias.flatMap { g($0) }, dOut: dOut, x: x, weight: P.pointer(weight),
                           N: N, I: I, O: O, layout: layout)
            guard let lora, let (a, b, m) = lora.adapter(forWeight: weight), let xa = L?.lora[weight] else { return }
            let r = lora.settings.rank
            let dA = sink.lora?.optionalPointer(m.name + ".lora_A.weight"), dB = sink.lora?.optionalPointer(m.name + ".lora_B.weight")
            guard dA != nil || dB != nil || wantDx else { return }
            // dB (O, r) += s dOut^T xa;  dxa (N, r) = s dOut B;  dA (r, I) += dxa^T x;  dx += dxa A
            if let dB { gemm(transA: true, transB: false, M: O, N: r, K: N, alpha: lora.scale, A: dOut, lda: O, B: xa.p, ldb: r, beta: 1, C: dB, ldc: r) }
            let dxa = Scratch(N * r)
            defer { dxa.free() }
            gemm(transA: false, transB: false, M: N, N: r, K: O, alpha: lora.scale, A: dOut, lda: O, B: b, ldb: r, C: dxa.p, ldc: r)
            if let dA { gemm(transA: true, transB: false, M: r, N: I, K: N, A: dxa.p, lda: r, B: x, ldb: I, beta: 1, C: dA, ldc: I) }
            if wantDx { gemm(transA: false, transB: false, M: N, N: I, K: r, A: dxa.p, lda: r, B: a, ldb: I, beta: 1, C: dx, ldc: I) }
        }
        // A norm's backward by module name: dWeight (and dBias) when trainable, dx += only when
        // something below `stage` trains.
        func norm(_ dx: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ module: String,
                  mean: UnsafePointer<Float>?, rstd: UnsafePointer<Float>, rows: Int, width: Int, stage: Int) {
            let w = module + ".weight"
            switch d.norm {
            case let .rms(offset):
                rmsNormBackward(dx: lowest < stage ? dx : nil, dWeight: g(w), dOut: dOut, x: x, weight: P.pointer(w), rstd: rstd,
                                N: rows, C: width, offset: offset)
            case .layer:
                layerNormBackward(dx: lowest < stage ? dx : nil, dWeight: g(w), dBias: g(module + ".bias"), dOut: dOut, x: x,
                                  weight: P.pointer(w), mean: mean!, rstd: rstd, N: rows, C: width)
            }
        }

        // Head and loss, on the scored rows only. dLogits overwrite the logits in place; with a
        // final soft-cap, the cap's derivative 1 - (capped/cap)² is taken before.
        var capSlope: [Float] = []
        if let cap = c.finalSoftcap {
            capSlope = (0..<M * V).map { let t = tape.logits.p[$0] / cap; return 1 - t * t }
        }
        crossEntropyBackward(dLogits: tape.logits.p, logits: tape.logits.p, lse: tape.lse.p, targets: tape.targets, N: M, V: V, scale: lossScale,
                             soft: tape.soft)
        for i in capSlope.indices { tape.logits.p[i] *= capSlope[i] }
        let dx = Scratch(N * C), dxn = Scratch(N * C)
        defer { dx.free(); dxn.free() }
        dx.p.initialize(repeating: 0, count: N * C)
        dxn.p.initialize(repeating: 0, count: N * C)
        if M > 0 {
            if tape.compactHead {
                // dxnS (M, C) in dx's storage (zeroed again below), scattered to the scored rows of dxn.
                let dxnS = dx.p
                linear(dxnS, tape.logits.p, tape.xnS.p, outputName, nil, C, V, .outIn, nil, headStage: 2 + S * c.layers, rows: M)
                for (m, r) in tape.headRows.enumerated() { (dxn.p + r * C).update(from: dxnS + m * C, count: C) }
                dx.p.initialize(repeating: 0, count: M * C)
            } else {
                linear(dxn.p, tape.logits.p, tape.xnF.p, outputName, nil, C, V, .outIn, nil, headStage: 2 + S * c.layers)
            }
        }
        let finalStage = 1 + S * c.layers
        guard lowest <= finalStage else { return }
        norm(dx.p, dxn.p, tape.xFinal.p, d.finalNorm, mean: tape.meanF.p, rstd: tape.rstdF.p, rows: N, width: C, stage: finalStage)
        guard lowest < finalStage else { return }

        let dq = Scratch(N * c.qDim), dk = Scratch(N * c.kvDim), dv = Scratch(N * c.kvDim), datt = Scratch(N * c.qDim)
        let da1 = Scratch(N * I), da2 = Scratch(N * I), dh = Scratch(N * I), dpost = Scratch(N * C)
        let dfused = Scratch(N * fusedWidth)
        let dqPre = Scratch(d.qkNorm != nil ? N * c.qDim : 0), dkPre = Scratch(d.qkNorm != nil ? N * c.kvDim : 0)
        defer { [dq, dk, dv, datt, da1, da2, dh, dpost, dfused, dqPre, dkPre].forEach { $0.free() } }
        func zero(_ s: Scratch, _ n: Int) { s.p.initialize(repeating: 0, count: n) }

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let L = tape.layers[l]
            let p = { (m: String) in d.name(l, m) }
            func st(_ step: BlockDescription.Step) -> Int { stage(l, step) }
            // MLP: x += post(down(act(gate) * up)) — dx is the gradient of the block output.
            zero(dh, N * I); zero(da1, N * I); zero(da2, N * I); zero(dxn, N * C)
            // A sandwich norm after a sub-block: dx through it into dpost (nil: nothing below trains).
            func throughPostNorm(_ module: String?, pre: Scratch, rstd: Scratch, _ step: BlockDescription.Step) -> UnsafePointer<Float>? {
                guard let module else { return UnsafePointer(dx.p) }
                zero(dpost, N * C)
                norm(dpost.p, dx.p, pre.p, p(module), mean: nil, rstd: rstd.p, rows: N, width: C, stage: st(step))
                return lowest >= st(step) ? nil : UnsafePointer(dpost.p)
            }
            guard let dm = throughPostNorm(d.postMlpNorm, pre: L.mPre, rstd: L.rstdM, .postMlpNorm) else { return }
            linear(dh.p, dm, L.h.p, p(d.mlpOutput) + ".weight", p(d.mlpOutput) + ".bias", I, C, d.weightLayout, L)
            if lowest >= st(.mlpOutput) { return }
            if d.gated {
                gatedBackward(dGate: da1.p, dUp: da2.p, dOut: dh.p, gate: L.a1.p, up: L.a2.p, count: N * I, activation: c.activation)
            } else {
                geluBackward(dx: da1.p, dOut: dh.p, x: L.a1.p, count: N * I, activation: c.activation)
            }
            switch d.mlpIn {
            case let .separate(m):
                linear(dxn.p, da1.p, L.xn2.p, p(m[0]) + ".weight", p(m[0]) + ".bias", C, I, d.weightLayout, L)
                if d.gated { linear(dxn.p, da2.p, L.xn2.p, p(m[1]) + ".weight", p(m[1]) + ".bias", C, I, d.weightLayout, L) }
            case let .fused(m):
                joinColumns([(da1.p, I), (da2.p, I)], rows: N, into: dfused.p)
                linear(dxn.p, dfused.p, L.xn2.p, p(m) + ".weight", p(m) + ".bias", C, 2 * I, d.weightLayout, L)
            }
            if lowest >= st(.mlpIn) { return }
            norm(dx.p, dxn.p, L.xMid.p, p(d.mlpNorm), mean: L.mean2.p, rstd: L.rstd2.p, rows: N, width: C, stage: st(.mlpNorm))
            if lowest >= st(.mlpNorm) { return }
            // Attention: x += post(o(attention(q, k, v))) — dx is now the gradient of the block's middle.
            zero(datt, N * c.qDim); zero(dq, N * c.qDim); zero(dk, N * c.kvDim); zero(dv, N * c.kvDim); zero(dxn, N * C)
            guard let da = throughPostNorm(d.postAttentionNorm, pre: L.aPre, rstd: L.rstdA, .postAttentionNorm) else { return }
            linear(datt.p, da, L.att.p, p(d.attentionOutput) + ".weight", p(d.attentionOutput) + ".bias", c.qDim, C, d.weightLayout, L)
            if lowest >= st(.attentionOutput) { return }
            let options = attentionOptions(layer: l)
            for (o, n, po) in tape.segments {
                attentionBackward(dq: dq.p + o * c.qDim, dk: dk.p + o * c.kvDim, dv: dv.p + o * c.kvDim, dOut: datt.p + o * c.qDim,
                                  q: L.q.p + o * c.qDim, keys: L.k.p + o * c.kvDim, values: L.v.p + o * c.kvDim,
                                  probs: L.probs.p + po, T: n, H: c.heads, KV: c.kvHeads, D: c.headDim, options: options)
            }
            if d.rotary {
                let f = invFreq(layer: l)
                ropeBackward(dx: dq.p, positions: tape.positions, heads: c.heads, D: c.headDim, invFreq: f)
                ropeBackward(dx: dk.p, positions: tape.positions, heads: c.kvHeads, D: c.headDim, invFreq: f)
            }
            if let (qn, kn) = d.qkNorm {
                zero(dqPre, N * c.qDim); zero(dkPre, N * c.kvDim)
                let s = st(.qkNorm)
                norm(dqPre.p, dq.p, L.qPre.p, p(qn), mean: nil, rstd: L.rstdQ.p, rows: N * c.heads, width: c.headDim, stage: s)
                norm(dkPre.p, dk.p, L.kPre.p, p(kn), mean: nil, rstd: L.rstdK.p, rows: N * c.kvHeads, width: c.headDim, stage: s)
                if lowest >= s { return }
                dq.p.update(from: dqPre.p, count: N * c.qDim)
                dk.p.update(from: dkPre.p, count: N * c.kvDim)
            }
            switch d.qkv {
            case let .separate(m):
                linear(dxn.p, dq.p, L.xn1.p, p(m[0]) + ".weight", p(m[0]) + ".bias", C, c.qDim, d.weightLayout, L)
                linear(dxn.p, dk.p, L.xn1.p, p(m[1]) + ".weight", p(m[1]) + ".bias", C, c.kvDim, d.weightLayout, L)
                linear(dxn.p, dv.p, L.xn1.p, p(m[2]) + ".weight", p(m[2]) + ".bias", C, c.kvDim, d.weightLayout, L)
            case let .fused(m):
                let W = c.qDim + 2 * c.kvDim
                joinColumns([(dq.p, c.qDim), (dk.p, c.kvDim), (dv.p, c.kvDim)], rows: N, into: dfused.p)
                linear(dxn.p, dfused.p, L.xn1.p, p(m) + ".weight", p(m) + ".bias", C, W, d.weightLayout, L)
            }
            if lowest >= st(.qkv) { return }
            norm(dx.p, dxn.p, L.xIn.p, p(d.inputNorm), mean: L.mean1.p, rstd: L.rstd1.p, rows: N, width: C, stage: st(.inputNorm))
            if lowest >= st(.inputNorm) { return }
        }
        guard lowest == 0 else { return }
        if let pe = d.positionEmbedding, let dP = g(pe) {
            positionEmbeddingBackward(dTable: dP, dOut: dx.p, positions: tape.positions, C: C)
        }
        if let s = c.embeddingScale { for i in 0..<N * C { dx.p[i] *= s } }
        if let dE = g(embeddingName) { embeddingBackward(dTable: dE, dOut: dx.p, tokens: tape.tokens, C: C) }
    }
}

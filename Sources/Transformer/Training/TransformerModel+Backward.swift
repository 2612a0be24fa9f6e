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
    /// Position of a parameter in the forward order: 0 embeddings; 1 + 6l + k for layer l with
    /// k = 0 first norm, 1 q/k/v, 2 attention output, 3 second norm, 4 gate/up/fc, 5 down/mlp proj;
    /// then the final norm and the head. The backward computes input gradients of a step only
    /// when something earlier is trainable.
    func stage(of name: String) -> Int {
        let L = config.layers
        let layerPrefix = config.family == .llama ? "model.layers." : "transformer.h."
        if name.hasPrefix(layerPrefix) {
            let rest = name.dropFirst(layerPrefix.count)
            guard let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]) else { return 0 }
            let k: Int
            if name.contains("input_layernorm") || name.contains(".ln_1.") { k = 0 }
            else if name.contains("q_proj") || name.contains("k_proj") || name.contains("v_proj") || name.contains("c_attn") { k = 1 }
            else if name.contains("o_proj") || name.contains("attn.c_proj") { k = 2 }
            else if name.contains("post_attention_layernorm") || name.contains(".ln_2.") { k = 3 }
            else if name.contains("gate_proj") || name.contains("up_proj") || name.contains("c_fc") { k = 4 }
            else { k = 5 }
            return 1 + 6 * l + k
        }
        if name == "model.norm.weight" || name.hasPrefix("transformer.ln_f") { return 1 + 6 * L }
        if name == "lm_head.weight" { return 2 + 6 * L }
        return 0
    }

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
        let firstKept = lowest == Int.max ? config.layers : max(0, (lowest - 1) / 6)
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

    /// The backward pass, the training forward replayed in reverse.
    func backward(_ tape: TrainingTape, sink: GradientSink, lora: LoRAAdapters?, lowest: Int, lossScale: Float) {
        let c = config
        let N = tape.N, M = tape.M, C = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize
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

        // Head and loss, on the scored rows only. dLogits overwrite the logits in place.
        crossEntropyBackward(dLogits: tape.logits.p, logits: tape.logits.p, lse: tape.lse.p, targets: tape.targets, N: M, V: V, scale: lossScale,
                             soft: tape.soft)
        let dx = Scratch(N * C), dxn = Scratch(N * C)
        defer { dx.free(); dxn.free() }
        dx.p.initialize(repeating: 0, count: N * C)
        dxn.p.initialize(repeating: 0, count: N * C)
        if M > 0 {
            if tape.compactHead {
                // dxnS (M, C) in dx's storage (zeroed again below), scattered to the scored rows of dxn.
                let dxnS = dx.p
                linear(dxnS, tape.logits.p, tape.xnS.p, outputName, nil, C, V, .outIn, nil, headStage: 2 + 6 * c.layers, rows: M)
                for (m, r) in tape.headRows.enumerated() { (dxn.p + r * C).update(from: dxnS + m * C, count: C) }
                dx.p.initialize(repeating: 0, count: M * C)
            } else {
                linear(dxn.p, tape.logits.p, tape.xnF.p, outputName, nil, C, V, .outIn, nil, headStage: 2 + 6 * c.layers)
            }
        }
        let finalStage = 1 + 6 * c.layers
        guard lowest <= finalStage else { return }
        switch c.family {
        case .llama:
            rmsNormBackward(dx: lowest < finalStage ? dx.p : nil, dWeight: g("model.norm.weight"), dOut: dxn.p, x: tape.xFinal.p,
                            weight: P.pointer("model.norm.weight"), rstd: tape.rstdF.p, N: N, C: C)
        case .gpt2:
            layerNormBackward(dx: lowest < finalStage ? dx.p : nil, dWeight: g("transformer.ln_f.weight"), dBias: g("transformer.ln_f.bias"), dOut: dxn.p,
                              x: tape.xFinal.p, weight: P.pointer("transformer.ln_f.weight"), mean: tape.meanF.p, rstd: tape.rstdF.p, N: N, C: C)
        }
        guard lowest < finalStage else { return }

        let dq = Scratch(N * c.qDim), dk = Scratch(N * c.kvDim), dv = Scratch(N * c.kvDim), datt = Scratch(N * c.qDim)
        let da1 = Scratch(N * I), da2 = Scratch(N * I), dh = Scratch(N * I)
        let dqkv = c.family == .gpt2 ? Scratch(N * 3 * C) : Scratch(0)
        defer { [dq, dk, dv, datt, da1, da2, dh, dqkv].forEach { $0.free() } }
        func zero(_ s: Scratch, _ n: Int) { s.p.initialize(repeating: 0, count: n) }

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let L = tape.layers[l], base = 1 + 6 * l
            guard lowest <= base + 5 else { break }
            // MLP: x += down(act(gate/fc)) — dx is the gradient of the block output.
            zero(dh, N * I); zero(da1, N * I); zero(da2, N * I); zero(dxn, N * C)
            switch c.family {
            case .llama:
                let p = "model.layers.\(l)."
                linear(dh.p, dx.p, L.h.p, p + "mlp.down_proj.weight", p + "mlp.down_proj.bias", I, C, .outIn, L)
                if lowest >= base + 5 { break }
                swigluBackward(dGate: da1.p, dUp: da2.p, dOut: dh.p, gate: L.a1.p, up: L.a2.p, count: N * I)
                linear(dxn.p, da1.p, L.xn2.p, p + "mlp.gate_proj.weight", p + "mlp.gate_proj.bias", C, I, .outIn, L)
                linear(dxn.p, da2.p, L.xn2.p, p + "mlp.up_proj.weight", p + "mlp.up_proj.bias", C, I, .outIn, L)
                if lowest >= base + 4 { break }
                rmsNormBackward(dx: lowest < base + 3 ? dx.p : nil, dWeight: g(p + "post_attention_layernorm.weight"), dOut: dxn.p, x: L.xMid.p,
                                weight: P.pointer(p + "post_attention_layernorm.weight"), rstd: L.rstd2.p, N: N, C: C)
            case .gpt2:
                let p = "transformer.h.\(l)."
                linear(dh.p, dx.p, L.h.p, p + "mlp.c_proj.weight", p + "mlp.c_proj.bias", I, C, .inOut, L)
                if lowest >= base + 5 { break }
                geluBackward(dx: da1.p, dOut: dh.p, x: L.a1.p, count: N * I, activation: c.activation)
                linear(dxn.p, da1.p, L.xn2.p, p + "mlp.c_fc.weight", p + "mlp.c_fc.bias", C, I, .inOut, L)
                if lowest >= base + 4 { break }
                layerNormBackward(dx: lowest < base + 3 ? dx.p : nil, dWeight: g(p + "ln_2.weight"), dBias: g(p + "ln_2.bias"), dOut: dxn.p, x: L.xMid.p,
                                  weight: P.pointer(p + "ln_2.weight"), mean: L.mean2.p, rstd: L.rstd2.p, N: N, C: C)
            }
            guard lowest < base + 3 else { break }
            // Attention: x += o(attention(q, k, v)) — dx is now the gradient of the block's middle.
            zero(datt, N * c.qDim); zero(dq, N * c.qDim); zero(dk, N * c.kvDim); zero(dv, N * c.kvDim); zero(dxn, N * C)
            let oName = c.family == .llama ? "model.layers.\(l).self_attn.o_proj" : "transformer.h.\(l).attn.c_proj"
            linear(datt.p, dx.p, L.att.p, oName + ".weight", oName + ".bias", c.qDim, C, c.family == .llama ? .outIn : .inOut, L)
            guard lowest < base + 2 else { break }
            for (o, n, po) in tape.segments {
                attentionBackward(dq: dq.p + o * c.qDim, dk: dk.p + o * c.kvDim, dv: dv.p + o * c.kvDim, dOut: datt.p + o * c.qDim,
                                  q: L.q.p + o * c.qDim, keys: L.k.p + o * c.kvDim, values: L.v.p + o * c.kvDim,
                                  probs: L.probs.p + po, T: n, H: c.heads, KV: c.kvHeads, D: c.headDim)
            }
            switch c.family {
            case .llama:
                let p = "model.layers.\(l).self_attn."
                ropeBackward(dx: dq.p, positions: tape.positions, heads: c.heads, D: c.headDim, invFreq: invFreq)
                ropeBackward(dx: dk.p, positions: tape.positions, heads: c.kvHeads, D: c.headDim, invFreq: invFreq)
                linear(dxn.p, dq.p, L.xn1.p, p + "q_proj.weight", p + "q_proj.bias", C, c.qDim, .outIn, L)
                linear(dxn.p, dk.p, L.xn1.p, p + "k_proj.weight", p + "k_proj.bias", C, c.kvDim, .outIn, L)
                linear(dxn.p, dv.p, L.xn1.p, p + "v_proj.weight", p + "v_proj.bias", C, c.kvDim, .outIn, L)
                if lowest >= base + 1 { break }
                let w = "model.layers.\(l).input_layernorm.weight"
                rmsNormBackward(dx: lowest < base ? dx.p : nil, dWeight: g(w), dOut: dxn.p, x: L.xIn.p, weight: P.pointer(w), rstd: L.rstd1.p, N: N, C: C)
            case .gpt2:
                let p = "transformer.h.\(l)."
                for n in 0..<N {
                    (dqkv.p + n * 3 * C).update(from: dq.p + n * C, count: C)
                    (dqkv.p + n * 3 * C + C).update(from: dk.p + n * C, count: C)
                    (dqkv.p + n * 3 * C + 2 * C).update(from: dv.p + n * C, count: C)
                }
                linear(dxn.p, dqkv.p, L.xn1.p, p + "attn.c_attn.weight", p + "attn.c_attn.bias", C, 3 * C, .inOut, L)
                if lowest >= base + 1 { break }
                layerNormBackward(dx: lowest < base ? dx.p : nil, dWeight: g(p + "ln_1.weight"), dBias: g(p + "ln_1.bias"), dOut: dxn.p, x: L.xIn.p,
                                  weight: P.pointer(p + "ln_1.weight"), mean: L.mean1.p, rstd: L.rstd1.p, N: N, C: C)
            }
            guard lowest < base else { break }
        }
        guard lowest == 0 else { return }
        if let dE = g(embeddingName) { embeddingBackward(dTable: dE, dOut: dx.p, tokens: tape.tokens, C: C) }
        if c.family == .gpt2, let dP = g("transformer.wpe.weight") {
            positionEmbeddingBackward(dTable: dP, dOut: dx.p, positions: tape.positions, C: C)
        }
    }
}

import CTransformerKernels
import Checkpoints
import Foundation
import Tensors

// Decoding-time linear layers over GGUF block-quantised weights.
//
// x: (N, I) with N small (token-by-token decoding), packed weight (O, I) as stored in the GGUF
// file  ->  out: (N, O) = x W^T (+ bias), with W the dequantised weights.
// Prefill and training use the Float32 parameter buffer and sgemm; this path only reads the
// packed bytes (Q4_1 is 5 bits per weight instead of 32), which is what bounds decoding speed.
// For llama.cpp's permuted Q/K rows, `rowOrder[f]` is the GGUF row of Hugging Face row f.

/// A weight matrix kept in its GGUF block format (Q8_0 or Q4_1), referencing the mapped file.
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    let bytes: UnsafeRawPointer
    let rowOrder: [Int]?
    let owner: GGUFFile

    /// The types with a decoding kernel.
    public static let supported: Set<GGMLType> = [.q8_0, .q4_1]
}

/// Threads for the decoding kernels: the process's thread budget (`BLASThreads.budget`: the
/// user's OPENBLAS_NUM_THREADS when set, else the cores).
let decodeThreads: Int = BLASThreads.budget

func quantizedGemv(_ m: QuantizedMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int = decodeThreads) {
    let w = m.bytes.assumingMemoryBound(to: UInt8.self)
    let target = m.rowOrder == nil ? y : UnsafeMutablePointer<Float>.allocate(capacity: m.rows)
    defer { if m.rowOrder != nil { target.deallocate() } }
    let parts = (threads > 1 && m.rows * m.cols >= 1 << 17) ? threads : 1
    let isQ8 = m.type == .q8_0, rows = m.rows, cols = m.cols
    // Addresses cross into the worker closures as integers (each worker writes its own rows).
    let (wa, xa, ya) = (UInt(bitPattern: w), UInt(bitPattern: x), UInt(bitPattern: target))
    let run: @Sendable (Int, Int) -> Void = { r0, r1 in
        let w = UnsafePointer<UInt8>(bitPattern: wa)!, x = UnsafePointer<Float>(bitPattern: xa)!
        let y = UnsafeMutablePointer<Float>(bitPattern: ya)!
        if isQ8 { ws_gemv_q8_0(w, r0, r1, cols, x, y) } else { ws_gemv_q4_1(w, r0, r1, cols, x, y) }
    }
    if parts == 1 {
        run(0, rows)
    } else {
        let chunk = (rows + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let r0 = p * chunk, r1 = min(rows, r0 + chunk)
            if r0 < r1 { run(r0, r1) }
        }
    }
    if let order = m.rowOrder {
        for (f, g) in order.enumerated() { y[f] = target[g] }
    }
}

/// out (N, O) = x (N, I) W^T + bias through the quantised kernel, one row of x at a time.
func quantizedLinearForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: QuantizedMatrix,
                            bias: UnsafePointer<Float>?, N: Int) {
    for n in 0..<N {
        let o = out + n * weight.rows
        quantizedGemv(weight, x: x + n * weight.cols, y: o)
        if let b = bias { for i in 0..<weight.rows { o[i] += b[i] } }
    }
}

extension QuantizedMatrix {
    /// The packed matrix of GGUF tensor `name` when its type has a kernel, else nil.
    /// `permutedHeads`: the head count llama.cpp permuted the rows with (Q/K of llama/mistral).
    static func make(_ gguf: GGUFFile, _ name: String, permutedHeads: Int?) -> QuantizedMatrix? {
        guard let info = gguf.info(name), info.dims.count == 2, supported.contains(info.type),
              let p = try? gguf.withRawBytes(name, { $0.baseAddress }) else { return nil }
        let rows = info.dims[1], cols = info.dims[0]
        var order: [Int]? = nil
        if let heads = permutedHeads {
            guard rows % (2 * heads) == 0 else { return nil }
            let d = rows / heads, half = d / 2
            var o = [Int](repeating: 0, count: rows)
            for h in 0..<heads { for i in 0..<half { for j in 0..<2 { o[h * d + j * half + i] = h * d + 2 * i + j } } }
            order = o
        }
        return QuantizedMatrix(type: info.type, rows: rows, cols: cols, bytes: p, rowOrder: order, owner: gguf)
    }
}

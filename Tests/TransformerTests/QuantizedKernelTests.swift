import CTransformerKernels
import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer

/// The AVX2 and scalar quantised gemv kernels against the Float32 product with the dequantised
/// matrix (GGUFDequantize, itself checked against the gguf package).
final class QuantizedKernelTests: XCTestCase {
    func randomBlocks(_ type: GGMLType, rows: Int, cols: Int, rng: inout SeededGenerator) -> [UInt8] {
        let (e, size) = type.blockLayout
        var bytes = (0..<rows * cols / e * size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for b in 0..<rows * cols / e {
            let d = floatToF16Bits(Float.random(in: -0.05...0.05, using: &rng))
            bytes[b * size] = UInt8(d & 0xFF); bytes[b * size + 1] = UInt8(d >> 8)
            if type == .q4_1 {
                let m = floatToF16Bits(Float.random(in: -0.1...0.1, using: &rng))
                bytes[b * size + 2] = UInt8(m & 0xFF); bytes[b * size + 3] = UInt8(m >> 8)
            }
        }
        return bytes
    }

    func testGemvMatchesDequantisedProduct() throws {
        var rng = SeededGenerator(seed: 3)
        for type in [GGMLType.q8_0, .q4_1] {
            let rows = 37, cols = 160
            let bytes = randomBlocks(type, rows: rows, cols: cols, rng: &rng)
            let x = (0..<cols).map { _ in Float.random(in: -1...1, using: &rng) }
            let w = try bytes.withUnsafeBytes { try GGUFDequantize.dequantize($0, type: type, count: rows * cols) }
            let want = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * Double(x[$1]) } }
            var fast = [Float](repeating: 0, count: rows), slow = fast
            bytes.withUnsafeBufferPointer { b in
                if type == .q8_0 {
                    ws_gemv_q8_0(b.baseAddress!, 0, rows, cols, x, &fast)
                    ws_gemv_q8_0_scalar(b.baseAddress!, 0, rows, cols, x, &slow)
                } else {
                    ws_gemv_q4_1(b.baseAddress!, 0, rows, cols, x, &fast)
                    ws_gemv_q4_1_scalar(b.baseAddress!, 0, rows, cols, x, &slow)
                }
            }
            for r in 0..<rows {
                XCTAssertEqual(Double(fast[r]), want[r], accuracy: 1e-4, "\(type) row \(r)")
                XCTAssertEqual(Double(slow[r]), want[r], accuracy: 1e-4, "\(type) row \(r)")
            }
            XCTAssertGreaterThan(want.map(abs).max() ?? 0, 0.1)
        }
    }
}

import CConversions
import XCTest
@testable import Tensors

/// `NonFinite` (AVX2 and scalar C) against a naive Swift count, on every 16-bit pattern and on
/// Float32 arrays of odd lengths and offsets that mix NaN, ±Inf, the largest finite values,
/// subnormals and zeros.
final class NonFiniteTests: XCTestCase {
    func bothPaths(_ body: (String) throws -> Void) rethrows {
        try body("vector")
        ws_force_scalar(1)
        defer { ws_force_scalar(0) }
        try body("scalar C")
    }

    func testEvery16BitPattern() {
        let bits: [UInt16] = (0...0xFFFF).map { UInt16($0) }
        // Exponent all ones: 2 * 1024 patterns in F16 (0x7C00 mask), 2 * 128 in BF16 (0x7F80).
        let f16 = bits.filter { !Float(Float16(bitPattern: $0)).isFinite }.count
        let bf16 = bits.filter { !Float(bitPattern: UInt32($0) << 16).isFinite }.count
        XCTAssertEqual(f16, 2048)
        XCTAssertEqual(bf16, 256)
        bothPaths { path in
            bits.withUnsafeBytes { raw in
                XCTAssertEqual(NonFinite.count(raw: raw, dtype: .f16), f16, path)
                XCTAssertEqual(NonFinite.count(raw: raw, dtype: .bf16), bf16, path)
                // Unaligned start, odd length (the vector body plus a scalar tail).
                let part = UnsafeRawBufferPointer(rebasing: raw[1..<(1 + 2 * 1001)])
                let expected = (0..<1001).filter {
                    !Float(Float16(bitPattern: part.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))).isFinite
                }.count
                XCTAssertGreaterThan(expected, 0)
                XCTAssertEqual(NonFinite.count(raw: part, dtype: .f16), expected, path)
            }
        }
    }

    func testFloat32CountsAndCopy() {
        var rng = SeededRandom(seed: 7)
        let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                 .leastNonzeroMagnitude, 0, -0, 1, Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFF80_0001)]
        for n in [0, 1, 7, 8, 9, 31, 1000, 4099] {
            let values = (0..<n).map { _ in rng.nextUniform() < 0.1 ? specials[Int(rng.nextUniform() * Double(specials.count)) % specials.count]
                                                                 : Float(rng.nextNormal()) }
            let expected = NonFinite.referenceCount(values)
            bothPaths { path in
                values.withUnsafeBufferPointer { XCTAssertEqual(NonFinite.count($0), expected, "\(path) n=\(n)") }
                values.withUnsafeBytes { XCTAssertEqual(NonFinite.count(raw: $0, dtype: .f32), expected, "\(path) n=\(n)") }
                var out = [Float](repeating: 5, count: n + 1)
                let c = values.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { NonFinite.copyCounting(s, into: $0.baseAddress!) } }
                XCTAssertEqual(c, expected, "\(path) n=\(n)")
                XCTAssertEqual(out.prefix(n).map(\.bitPattern), values.map(\.bitPattern), "\(path) n=\(n)")
                XCTAssertEqual(out[n], 5, "\(path): wrote past the end")
            }
        }
        XCTAssertEqual(NonFinite.count(UnsafeBufferPointer(start: nil, count: 0)), 0)
    }

    /// Only non-finite values count: the largest finite Float32 and F64 values do not.
    func testBoundaries() {
        let f: [Float] = [.greatestFiniteMagnitude, .infinity]
        f.withUnsafeBytes { XCTAssertEqual(NonFinite.count(raw: $0, dtype: .f32), 1) }
        let d: [Double] = [.greatestFiniteMagnitude, .nan, -.infinity, 1]
        d.withUnsafeBytes { XCTAssertEqual(NonFinite.count(raw: $0, dtype: .f64), 2) }
        let ints: [Int32] = [0x7F80_0000, -1]
        ints.withUnsafeBytes { XCTAssertEqual(NonFinite.count(raw: $0, dtype: .i32), 0) }
    }
}

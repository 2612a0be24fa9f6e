import CConversions
import XCTest
@testable import Tensors

/// The bulk F16/BF16 conversions (CConversions: F16C/AVX2 or scalar C) against the scalar Swift
/// definitions (`f16BitsToFloat` via Swift's `Float16`, `floatToBF16Bits`...), bit for bit.
final class DTypeConversionTests: XCTestCase {
    /// Runs `body` with the vector paths, then with the scalar C paths.
    func bothPaths(_ body: (String) throws -> Void) rethrows {
        try body(DTypeConversion.usesF16C ? "F16C/AVX2" : "scalar (no F16C on this CPU)")
        ws_force_scalar(1)
        defer { ws_force_scalar(0) }
        try body("scalar C")
    }

    static let allBits: [UInt16] = (0...0xFFFF).map { UInt16($0) }

    func decode(_ bits: [UInt16], _ dtype: DType, byteOffset: Int = 0) throws -> [Float] {
        var bytes = [UInt8](repeating: 0xAB, count: byteOffset)
        for b in bits { bytes.append(UInt8(b & 0xFF)); bytes.append(UInt8(b >> 8)) }
        return try bytes.withUnsafeBytes { raw in
            try DTypeConversion.decode(UnsafeRawBufferPointer(rebasing: raw[byteOffset...]), dtype: dtype, count: bits.count)
        }
    }

    func encode(_ values: [Float], _ dtype: DType) throws -> [UInt16] {
        let bytes = try DTypeConversion.encode(values, as: dtype)
        return (0..<values.count).map { UInt16(bytes[2 * $0]) | UInt16(bytes[2 * $0 + 1]) << 8 }
    }

    func testF16ToF32AllBitPatterns() throws {
        try bothPaths { path in
            for offset in [0, 1] {
                let got = try decode(Self.allBits, .f16, byteOffset: offset)
                for (b, g) in zip(Self.allBits, got) {
                    let want = f16BitsToFloat(b)
                    if want.isNaN {
                        XCTAssertTrue(g.isNaN, "\(path): f16 0x\(String(b, radix: 16)) -> \(g)")
                    } else if g.bitPattern != want.bitPattern {
                        XCTFail("\(path): f16 0x\(String(b, radix: 16)) -> \(g), expected \(want)")
                        return
                    }
                }
            }
        }
    }

    func testBF16ToF32AllBitPatterns() throws {
        try bothPaths { path in
            for offset in [0, 1] {
                let got = try decode(Self.allBits, .bf16, byteOffset: offset)
                XCTAssertEqual(got.map(\.bitPattern), Self.allBits.map { bf16BitsToFloat($0).bitPattern }, path)
            }
        }
    }

    /// Values at every rounding boundary: ties to even both ways, just above/below ties,
    /// overflow thresholds, subnormal boundaries, signed zeros, infinities and NaNs.
    static let edgeValues: [Float] = {
        var v: [Float] = [0, -0.0, .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345),
                          Float(bitPattern: 0x7FBF_FFFF), .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                          .leastNonzeroMagnitude, .leastNormalMagnitude, 65504, 65519.99, 65520, 65536, -65520, 1e-8,
                          5.9604645e-8, 2.9802322e-8, 2.9802326e-8, 8.940697e-8, 6.097555e-5, 6.1035156e-5, 1, 1.0009766, 2048, 2049, 2051]
        // Around every bf16 / f16 tie: ties, one ulp either side, for both parities.
        for hi: UInt32 in [0x3F80, 0x3F81, 0x4780, 0x477F, 0x7F7F, 0x0001, 0x0080, 0x3380, 0x3300, 0x3880] {
            for lo: UInt32 in [0x7FFF, 0x8000, 0x8001, 0x0000, 0xFFFF] {
                v.append(Float(bitPattern: hi << 16 | lo))
                v.append(-Float(bitPattern: hi << 16 | lo))
            }
        }
        for e: UInt32 in 90...160 {  // f16 ties (13 dropped bits) across the exponent range incl. subnormals
            for m: UInt32 in [0x1000, 0x3000, 0x0FFF, 0x1001, 0x7FF000, 0x7FFFFF] { v.append(Float(bitPattern: e << 23 | m)) }
        }
        return v
    }()

    func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(bitPattern: UInt32(truncatingIfNeeded: s >> 32))
        }
    }

    func testF32ToF16MatchesScalarReference() throws {
        let values = Self.edgeValues + randomFloats(300_000, seed: 1)
        try bothPaths { path in
            let got = try encode(values, .f16)
            for (x, g) in zip(values, got) {
                let want = floatToF16Bits(x)
                if x.isNaN {
                    XCTAssertTrue(Float16(bitPattern: g).isNaN, "\(path): \(x) -> 0x\(String(g, radix: 16))")
                } else if g != want {
                    XCTFail("\(path): f32 0x\(String(x.bitPattern, radix: 16)) -> 0x\(String(g, radix: 16)), expected 0x\(String(want, radix: 16))")
                    return
                }
            }
        }
    }

    func testF32ToBF16MatchesScalarReference() throws {
        let values = Self.edgeValues + randomFloats(300_000, seed: 2)
        try bothPaths { path in
            // Odd lengths exercise the scalar tails after the 16-wide loop.
            for n in [values.count, 1, 15, 17, 33] {
                let v = Array(values.prefix(n))
                XCTAssertEqual(try encode(v, .bf16), v.map(floatToBF16Bits), "\(path), n = \(n)")
            }
        }
    }

    func testBF16RoundingDefinition() {
        // The reference itself: ties to even, NaN stays NaN, overflow to infinity.
        XCTAssertEqual(floatToBF16Bits(Float(bitPattern: 0x3F80_8000)), 0x3F80)
        XCTAssertEqual(floatToBF16Bits(Float(bitPattern: 0x3F81_8000)), 0x3F82)
        XCTAssertEqual(floatToBF16Bits(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(floatToBF16Bits(Float(bitPattern: 0x7F7F_8000)), 0x7F80)
        XCTAssertTrue(bf16BitsToFloat(floatToBF16Bits(Float(bitPattern: 0x7F80_0001))).isNaN)
        XCTAssertEqual(floatToF16Bits(65520), 0x7C00)
        XCTAssertEqual(floatToF16Bits(65519.99), 0x7BFF)
        XCTAssertEqual(floatToF16Bits(2.9802322e-8), 0x0000)  // exactly half the smallest subnormal: to even (0)
        XCTAssertEqual(floatToF16Bits(8.940697e-8), 0x0002)   // 1.5 x smallest subnormal: to even (2)
    }
}

import Testing
@testable import Tensors

@Suite struct DTypeConversionSpotTests {
    @Test func bf16RoundsToNearestEven() {
        // 1.0 = 0x3F800000. Halfway up (0x3F808000) ties to even (0x3F80); just above rounds up.
        #expect(floatToBF16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(floatToBF16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // odd -> up to even
        #expect(floatToBF16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(floatToBF16Bits(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
        #expect(floatToBF16Bits(1.0) == 0x3F80)
        #expect(floatToBF16Bits(-2.0) == 0xC000)
        #expect(floatToBF16Bits(.infinity) == 0x7F80)
        // Largest finite float rounds to infinity in bf16 (overflow by rounding).
        #expect(floatToBF16Bits(Float.greatestFiniteMagnitude) == 0x7F80)
    }

    @Test func bf16NaNStaysNaN() {
        // A NaN whose payload sits only in the low 16 bits would truncate to infinity.
        let nan = Float(bitPattern: 0x7F80_0001)
        #expect(nan.isNaN)
        let b = floatToBF16Bits(nan)
        #expect(bf16BitsToFloat(b).isNaN)
        #expect(bf16BitsToFloat(floatToBF16Bits(-Float.nan)).isNaN)
    }

    @Test func bf16DecodeIsExact() throws {
        let bits: [UInt16] = [0x3F80, 0xC049, 0x0001, 0x7F7F]
        let bytes = bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let out = try bytes.withUnsafeBytes { try DTypeConversion.decode($0, dtype: .bf16, count: 4) }
        #expect(out.map { $0.bitPattern } == bits.map { UInt32($0) << 16 })
    }

    @Test func f16KnownBitPatterns() throws {
        let pairs: [(UInt16, Float)] = [(0x3C00, 1), (0xC000, -2), (0x7BFF, 65504), (0x0001, 5.960464477539063e-08),
                                       (0x3555, 0.333251953125), (0x7C00, .infinity), (0x0000, 0)]
        for (bits, value) in pairs {
            #expect(f16BitsToFloat(bits) == value)
            #expect(floatToF16Bits(value) == bits)
        }
        #expect(floatToF16Bits(1.0 / 3.0) == 0x3555)
        // Ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> 1.
        #expect(floatToF16Bits(1 + 0x1p-11) == 0x3C00)
        #expect(floatToF16Bits(1 + 3 * 0x1p-11) == 0x3C02)
        #expect(floatToF16Bits(70000) == 0x7C00)
        #expect(f16BitsToFloat(0x7E00).isNaN && f16BitsToFloat(floatToF16Bits(.nan)).isNaN)
        let enc = try DTypeConversion.encode([1, -2, 65504], as: .f16)
        #expect(enc == [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B])
        let dec = try enc.withUnsafeBytes { try DTypeConversion.decode($0, dtype: .f16, count: 3) }
        #expect(dec == [1, -2, 65504])
    }

    @Test func fp8IsRefused() {
        #expect(throws: TensorError.self) { try [UInt8](repeating: 0, count: 2).withUnsafeBytes { try DTypeConversion.decode($0, dtype: .f8e4m3, count: 2) } }
        #expect(throws: TensorError.self) { try DTypeConversion.encode([1], as: .i32) }
    }
}

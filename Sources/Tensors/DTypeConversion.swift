import CConversions

// Bulk conversions between stored dtypes and Float32.
//
// BF16 -> F32 is exact (a 16-bit shift). F32 -> BF16 rounds to nearest, ties to even, and keeps
// NaN a (quiet) NaN. F16 goes through Swift's `Float16`, which is IEEE binary16 with
// round-to-nearest-even. The scalar functions below are the definitions (and the references the
// tests use); bulk F16/BF16 work goes through the CConversions target (F16C/AVX2 when the CPU
// has them, bit-identical results). All input is read with unaligned little-endian loads, so a byte range
// taken straight out of a mapped file can be converted without copying it first.

/// Exact BF16 -> Float32.
@inlinable
public func bf16BitsToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Float32 -> BF16 with round-to-nearest-even; NaN stays NaN (quiet bit set), infinities stay.
@inlinable
public func floatToBF16Bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    // Add 0x7FFF plus the lowest kept bit: ties round to the even neighbour.
    let rounding = UInt32(0x7FFF) &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

@inlinable
public func f16BitsToFloat(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

@inlinable
public func floatToF16Bits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

public enum DTypeConversion {
    /// Decodes `count` little-endian elements of `dtype` from `source` into `destination` as Float32.
    /// Integers convert with Float32 rounding (|x| > 2^24 loses precision); BOOL gives 0 or 1.
    /// Throws for the FP8 types, whose conversion is refused rather than guessed.
    public static func decode(
        _ source: UnsafeRawBufferPointer, dtype: DType,
        into destination: UnsafeMutableBufferPointer<Float>, context: String = "tensor"
    ) throws {
        let count = destination.count
        guard source.count == count * dtype.byteSize else {
            throw TensorError.byteCountMismatch(context: context, expected: count * dtype.byteSize, actual: source.count)
        }
        guard count > 0 else { return }
        let d = destination.baseAddress!
        let s = source.baseAddress!
        switch dtype {
        case .f32:
            // memcpy: little-endian host, no alignment assumed.
            UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: count * 4)
        case .bf16:
            ws_bf16_to_f32(s, d, count)
        case .f16:
            ws_f16_to_f32(s, d, count)
        case .f64:
            for i in 0..<count { d[i] = Float(Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .i64:
            for i in 0..<count { d[i] = Float(Int64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .u64:
            for i in 0..<count { d[i] = Float(UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        case .i32:
            for i in 0..<count { d[i] = Float(Int32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .u32:
            for i in 0..<count { d[i] = Float(UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .i16:
            for i in 0..<count { d[i] = Float(Int16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .u16:
            for i in 0..<count { d[i] = Float(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .i8:
            for i in 0..<count { d[i] = Float(s.load(fromByteOffset: i, as: Int8.self)) }
        case .u8:
            for i in 0..<count { d[i] = Float(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool:
            for i in 0..<count { d[i] = s.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        case .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .c64:
            throw TensorError.unsupportedConversion(from: dtype, to: .f32, context: context)
        }
    }

    /// Decodes a whole byte range into a new Float32 array.
    public static func decode(_ source: UnsafeRawBufferPointer, dtype: DType, count: Int, context: String = "tensor") throws -> [Float] {
        try [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            try decode(source, dtype: dtype, into: buf, context: context)
            initialized = count
        }
    }

    /// Encodes Float32 values as little-endian `dtype` into `destination` (`count * byteSize` bytes).
    /// Floating outputs round to nearest even; integer outputs are refused (a merge never
    /// silently truncates to integers).
    public static func encode(
        _ source: UnsafeBufferPointer<Float>, as dtype: DType,
        into destination: UnsafeMutableRawBufferPointer, context: String = "tensor"
    ) throws {
        let count = source.count
        guard destination.count == count * dtype.byteSize else {
            throw TensorError.byteCountMismatch(context: context, expected: count * dtype.byteSize, actual: destination.count)
        }
        guard count > 0 else { return }
        let s = source.baseAddress!
        let d = destination.baseAddress!
        switch dtype {
        case .f32:
            d.copyMemory(from: UnsafeRawPointer(s), byteCount: count * 4)
        case .bf16:
            ws_f32_to_bf16(s, d, count)
        case .f16:
            ws_f32_to_f16(s, d, count)
        case .f64:
            for i in 0..<count { d.storeBytes(of: Double(s[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        default:
            throw TensorError.unsupportedConversion(from: .f32, to: dtype, context: context)
        }
    }

    /// Encodes Float32 values into a new byte array of `dtype`.
    public static func encode(_ values: [Float], as dtype: DType, context: String = "tensor") throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
        try values.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { dst in try encode(src, as: dtype, into: dst, context: context) }
        }
        return out
    }
}

extension DTypeConversion {
    /// Whether bulk F16 conversion uses the F16C instructions on this CPU.
    public static var usesF16C: Bool { ws_f16c_available() != 0 }
    /// Whether bulk BF16 conversion uses AVX2 on this CPU.
    public static var usesAVX2: Bool { ws_avx2_available() != 0 }
}

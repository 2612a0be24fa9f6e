import CConversions

/// Counting NaN and ±infinity (every exponent bit set), the one check behind every "bad numbers
/// never pass silently" guard: the writers count each chunk as they encode it, model loading
/// counts while it copies weights into the parameter buffer, `merge --stats` counts stored bytes.
/// AVX2 when the CPU has it, else scalar C; both give the same count.
public enum NonFinite {
    /// Non-finite values among `values`.
    @inlinable
    public static func count(_ values: UnsafeBufferPointer<Float>) -> Int {
        guard let p = values.baseAddress, values.count > 0 else { return 0 }
        return ws_count_nonfinite_f32(p, values.count)
    }

    /// Non-finite values among stored little-endian elements of `dtype` (`raw.count` a multiple of
    /// its element size). F16 and BF16 are checked on their bits, F64 per element; integer,
    /// BOOL and FP8 tensors are reported as 0 (FP8 conversions are refused elsewhere).
    public static func count(raw: UnsafeRawBufferPointer, dtype: DType) -> Int {
        guard let p = raw.baseAddress, raw.count > 0 else { return 0 }
        let n = raw.count / dtype.byteSize
        switch dtype {
        case .f32:
            // Mapped data may be unaligned: the kernel loads without alignment assumptions.
            return ws_count_nonfinite_f32(p.assumingMemoryBound(to: Float.self), n)
        case .f16: return ws_count_nonfinite_f16(p, n)
        case .bf16: return ws_count_nonfinite_bf16(p, n)
        case .f64:
            var c = 0
            for i in 0..<n where !Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))).isFinite { c += 1 }
            return c
        default: return 0
        }
    }

    /// Copies `source` into `destination` (same count) and returns the non-finite values among
    /// them, in one pass.
    @inlinable
    public static func copyCounting(_ source: UnsafeBufferPointer<Float>, into destination: UnsafeMutablePointer<Float>) -> Int {
        guard let s = source.baseAddress, source.count > 0 else { return 0 }
        return ws_copy_f32_count_nonfinite(destination, s, source.count)
    }

    /// Naive twin of the kernels, for tests.
    public static func referenceCount(_ values: [Float]) -> Int { values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
}

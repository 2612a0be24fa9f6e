import Tensors

/// ggml tensor types, numbered as in ggml.h. Only types whose block layout is known are listed:
/// a file using another type is rejected when it is opened (`GGUFError.unknownTensorType`).
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// Elements per block and bytes per block (ggml's `GGML_QUANT_SIZES`).
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_K: return (256, 84)
        case .q3_K: return (256, 110)
        case .q4_K: return (256, 144)
        case .q5_K: return (256, 176)
        case .q6_K: return (256, 210)
        case .q8_K: return (256, 292)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64: return (1, 8)
        case .f64: return (1, 8)
        }
    }

    /// Whether `GGUFDequantize.dequantize` decodes this type.
    public var isDequantizable: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// Bytes needed for `count` elements, or nil if `count` is not a whole number of blocks
    /// or the size overflows.
    public func byteCount(elements count: Int) -> Int? {
        let (e, b) = blockLayout
        guard count >= 0, count % e == 0 else { return nil }
        let (n, o) = (count / e).multipliedReportingOverflow(by: b)
        return o ? nil : n
    }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        }
    }
}

/// Dequantisation of ggml block formats to Float32, following the block layouts of ggml-quants.c
/// (and the reference `gguf.quants` Python module, against which the tests check).
///
/// Every block starts with its scale(s) as IEEE half floats; `q` are unsigned codes:
/// - Q8_0  (32): d, int8 q[32]                                  x = d * q
/// - Q4_0  (32): d, nibbles q[32]                               x = d * (q - 8)
/// - Q4_1  (32): d, m, nibbles                                  x = d * q + m
/// - Q5_0  (32): d, qh (32 high bits), nibbles                  x = d * (q - 16)
/// - Q5_1  (32): d, m, qh, nibbles                              x = d * q + m
/// - Q4_K (256): d, dmin, 12 bytes of eight 6-bit (scale, min), 4-bit q:  x = d*sc*q - dmin*mn
/// - Q5_K (256): as Q4_K plus 32 bytes of fifth bits
/// - Q6_K (256): 4 low bits, 2 high bits, int8 scales[16], d:    x = d * sc * (q - 32)
/// In the 32-element formats element j < 16 is the low nibble of byte j and j + 16 its high nibble.
public enum GGUFDequantize {
    /// Decodes `count` elements of `type` from `source` (exactly `type.byteCount(elements: count)` bytes).
    public static func dequantize(
        _ source: UnsafeRawBufferPointer, type: GGMLType, count: Int,
        into out: UnsafeMutableBufferPointer<Float>, context: String = "tensor"
    ) throws {
        guard let needed = type.byteCount(elements: count), needed == source.count, out.count == count else {
            throw TensorError.byteCountMismatch(context: context, expected: type.byteCount(elements: count) ?? -1, actual: source.count)
        }
        guard count > 0 else { return }
        let s = source.baseAddress!
        let d = out.baseAddress!
        let nb = count / type.blockLayout.elements
        let bs = type.blockLayout.bytes
        switch type {
        case .f32: UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: count * 4)
        case .f16: for i in 0..<count { d[i] = half(s, 2 * i) }
        case .bf16: for i in 0..<count { d[i] = bf16BitsToFloat(u16(s, 2 * i)) }
        case .f64: for i in 0..<count { d[i] = Float(Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .q8_0:
            for b in 0..<nb {
                let p = s + b * bs, o = d + b * 32
                let scale = half(p, 0)
                for j in 0..<32 { o[j] = scale * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
            }
        case .q4_0, .q4_1:
            let hasMin = type == .q4_1
            for b in 0..<nb {
                let p = s + b * bs, o = d + b * 32
                let scale = half(p, 0)
                let m: Float = hasMin ? half(p, 2) : 0
                let qs = p + (hasMin ? 4 : 2)
                let offset: Float = hasMin ? 0 : -8
                for j in 0..<16 {
                    let byte = qs.load(fromByteOffset: j, as: UInt8.self)
                    o[j] = scale * (Float(byte & 0x0F) + offset) + m
                    o[j + 16] = scale * (Float(byte >> 4) + offset) + m
                }
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            for b in 0..<nb {
                let p = s + b * bs, o = d + b * 32
                let scale = half(p, 0)
                let m: Float = hasMin ? half(p, 2) : 0
                let hOff = hasMin ? 4 : 2
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: hOff, as: UInt32.self))
                let qs = p + hOff + 4
                let offset: Float = hasMin ? 0 : -16
                for j in 0..<16 {
                    let byte = qs.load(fromByteOffset: j, as: UInt8.self)
                    let lo = UInt32(byte & 0x0F) | (((qh >> UInt32(j)) & 1) << 4)
                    let hi = UInt32(byte >> 4) | (((qh >> UInt32(j + 16)) & 1) << 4)
                    o[j] = scale * (Float(lo) + offset) + m
                    o[j + 16] = scale * (Float(hi) + offset) + m
                }
            }
        case .q4_K, .q5_K:
            let five = type == .q5_K
            for b in 0..<nb {
                let p = s + b * bs, o = d + b * 256
                let dd = half(p, 0), dmin = half(p, 2)
                let sc = p + 4
                let qh = p + 16                       // Q5_K only: 32 bytes, bit i of byte l = element 32*i + l
                let qs = p + (five ? 48 : 16)
                for sub in 0..<8 {
                    let (scale, mn) = scaleMin(sc, sub)
                    let dl = dd * Float(scale), ml = dmin * Float(mn)
                    // Sub-blocks 2k and 2k+1 share 32 bytes of qs: low nibbles, then high nibbles.
                    let bytes = qs + (sub / 2) * 32
                    let shift = UInt8((sub % 2) * 4)
                    for l in 0..<32 {
                        var q = UInt32((bytes.load(fromByteOffset: l, as: UInt8.self) >> shift) & 0x0F)
                        if five { q |= UInt32((qh.load(fromByteOffset: l, as: UInt8.self) >> UInt8(sub)) & 1) << 4 }
                        o[sub * 32 + l] = dl * Float(q) - ml
                    }
                }
            }
        case .q6_K:
            for b in 0..<nb {
                let p = s + b * bs, o = d + b * 256
                let ql = p, qh = p + 128, scales = p + 192
                let dd = half(p, 208)
                // Two halves of 128 elements; within a half, element 32*g + l (g = 0..3) takes the
                // low or high nibble of ql[64*half + 32*(g%2) + l] and bits 2g..2g+1 of qh[32*half + l].
                for h in 0..<2 {
                    for g in 0..<4 {
                        for l in 0..<32 {
                            let lowByte = ql.load(fromByteOffset: 64 * h + 32 * (g % 2) + l, as: UInt8.self)
                            let low = g < 2 ? lowByte & 0x0F : lowByte >> 4
                            let high = (qh.load(fromByteOffset: 32 * h + l, as: UInt8.self) >> UInt8(2 * g)) & 3
                            let q = Int(low | (high << 4)) - 32
                            let idx = 128 * h + 32 * g + l
                            let scale = Float(scales.load(fromByteOffset: idx / 16, as: Int8.self))
                            o[idx] = dd * scale * Float(q)
                        }
                    }
                }
            }
        default:
            throw GGUFError.unsupportedTensorType(tensor: context, type: type.description)
        }
    }

    /// Decodes into a new array.
    public static func dequantize(_ source: UnsafeRawBufferPointer, type: GGMLType, count: Int, context: String = "tensor") throws -> [Float] {
        try [Float](unsafeUninitializedCapacity: count) { buf, n in
            try dequantize(source, type: type, count: count, into: buf, context: context)
            n = count
        }
    }

    /// The 6-bit (scale, min) pair of sub-block `j` (0..<8) from the 12 packed bytes of a Q4_K/Q5_K block.
    @inline(__always)
    static func scaleMin(_ q: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0x0F) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    @inline(__always) static func u16(_ p: UnsafeRawPointer, _ off: Int) -> UInt16 {
        UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self))
    }

    @inline(__always) static func half(_ p: UnsafeRawPointer, _ off: Int) -> Float { f16BitsToFloat(u16(p, off)) }
}

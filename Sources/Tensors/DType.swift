/// Element types of checkpoint tensors, named as in the safetensors header (`"F32"`, `"BF16"`, ...).
///
/// Every safetensors dtype can be *described* (size, name); only the numeric types with an exact
/// or well-defined Float32 image can be *converted* (`isConvertibleToFloat32`). The FP8 types are
/// readable and listed, but numeric conversion of them is refused with `TensorError.unsupportedConversion`;
/// so is C64 (complex). The sub-byte types of recent safetensors (F4, F6_*) are not representable
/// here and are rejected as unknown dtypes when a header names them.
public enum DType: String, CaseIterable, Sendable, Codable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case i64 = "I64"
    case u64 = "U64"
    case f64 = "F64"
    /// complex64: two little-endian Float32 (real, imaginary) per element; listed, never converted.
    case c64 = "C64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .i64, .u64, .f64, .c64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .f16, .bf16, .f32, .f64: return true
        default: return false
        }
    }

    /// Whether `Float32` conversion is defined (all types but the FP8 family and complex).
    public var isConvertibleToFloat32: Bool {
        switch self {
        case .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .c64: return false
        default: return true
        }
    }

    /// Parses the lower-case spellings used on the command line and in recipes
    /// (`f32`, `float32`, `bfloat16`, `fp16`, ...) as well as the safetensors names.
    public init?(userSpelling: String) {
        switch userSpelling.lowercased() {
        case "f32", "float32", "float", "fp32": self = .f32
        case "f16", "float16", "half", "fp16": self = .f16
        case "bf16", "bfloat16": self = .bf16
        case "f64", "float64", "double", "fp64": self = .f64
        default:
            guard let d = DType(rawValue: userSpelling.uppercased()) else { return nil }
            self = d
        }
    }
}

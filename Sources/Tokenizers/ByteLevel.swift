/// GPT-2's reversible byte <-> printable-character map used by byte-level BPE: the printable
/// Latin-1 bytes ('!'...'~', '¡'...'¬', '®'...'ÿ') stand for themselves; the other 68 bytes are
/// given the code points 256, 257, ... in byte order (so the space 0x20 becomes 'Ġ' U+0120).
public enum ByteLevel {
    public static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    public static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of a UTF-8 byte string.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = String.UnicodeScalarView()
        for b in bytes { out.append(byteToScalar[Int(b)]) }
        return String(out)
    }

    /// The bytes a byte-level token string stands for; characters outside the map keep their own UTF-8.
    public static func decode(_ token: String, into bytes: inout [UInt8]) {
        for s in token.unicodeScalars {
            if let b = scalarToByte[s.value] { bytes.append(b) } else { bytes.append(contentsOf: Array(String(s).utf8)) }
        }
    }
}

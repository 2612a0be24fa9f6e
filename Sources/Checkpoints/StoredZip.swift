import Foundation

/// The entries of a ZIP archive whose members are stored uncompressed (method 0), as
/// `torch.save` writes them (PKWARE APPNOTE 6.3, §4.3: end of central directory, central
/// directory headers, local headers). Checked completely before use: signatures, counts, every
/// offset and size against the file, local header against the central directory. ZIP64
/// archives (members or archives above 4 GiB), compressed members, encryption and multi-disk
/// archives are refused with `unsupported`.
public struct StoredZip: Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// Byte range of the member's data in the file.
        public let offset: Int
        public let size: Int
    }

    public let path: String
    public let entries: [Entry]

    public enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        case malformed(path: String, reason: String)
        case unsupported(path: String, reason: String)
        public var description: String {
            switch self {
            case let .malformed(p, r): return "\(p): not a valid ZIP archive: \(r)"
            case let .unsupported(p, r): return "\(p): unsupported ZIP archive: \(r)"
            }
        }
    }

    public init(path: String, bytes b: UnsafeRawBufferPointer) throws {
        self.path = path
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        let n = b.count
        guard n >= 22 else { throw Failure.malformed(path: path, reason: "\(n) bytes, shorter than an end-of-central-directory record") }
        // The end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes.
        var eocd = -1
        var o = n - 22
        while o >= max(0, n - 22 - 65_535) {
            if u32(o) == 0x0605_4B50, o + 22 + u16(o + 20) == n { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw Failure.malformed(path: path, reason: "no end-of-central-directory record") }
        guard u16(eocd + 4) == 0, u16(eocd + 6) == 0 else { throw Failure.unsupported(path: path, reason: "multi-disk archive") }
        let count = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            throw Failure.unsupported(path: path, reason: "ZIP64 (an archive or member above 4 GiB)")
        }
        guard u16(eocd + 8) == count else { throw Failure.malformed(path: path, reason: "entry counts disagree") }
        guard cdOffset + cdSize <= eocd else {
            throw Failure.malformed(path: path, reason: "central directory at \(cdOffset)+\(cdSize) overlaps the end record at \(eocd)")
        }
        var entries: [Entry] = []
        var names = Set<String>()
        var p = cdOffset
        for k in 0..<count {
            guard p + 46 <= cdOffset + cdSize, u32(p) == 0x0201_4B50 else {
                throw Failure.malformed(path: path, reason: "central directory entry \(k) at \(p) has no valid signature")
            }
            let flags = u16(p + 8), method = u16(p + 10)
            let csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32), local = u32(p + 42)
            guard p + 46 + nameLen + extraLen + commentLen <= cdOffset + cdSize else {
                throw Failure.malformed(path: path, reason: "central directory entry \(k) runs past the directory")
            }
            guard let name = String(bytes: UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLen)]), encoding: .utf8) else {
                throw Failure.malformed(path: path, reason: "entry \(k) has a name that is not UTF-8")
            }
            if csize == 0xFFFF_FFFF || usize == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
                throw Failure.unsupported(path: path, reason: "ZIP64 member \"\(name)\"")
            }
            guard flags & 1 == 0 else { throw Failure.unsupported(path: path, reason: "member \"\(name)\" is encrypted") }
            guard method == 0 else { throw Failure.unsupported(path: path, reason: "member \"\(name)\" is compressed (method \(method)); only stored members are read") }
            guard csize == usize else { throw Failure.malformed(path: path, reason: "stored member \"\(name)\": compressed size \(csize) ≠ size \(usize)") }
            guard names.insert(name).inserted else { throw Failure.malformed(path: path, reason: "member \"\(name)\" appears twice") }
            // The local header repeats the name; its own extra field (alignment padding) may differ.
            guard local + 30 <= cdOffset, u32(local) == 0x0403_4B50 else {
                throw Failure.malformed(path: path, reason: "member \"\(name)\": no local header at \(local)")
            }
            let lNameLen = u16(local + 26), lExtraLen = u16(local + 28)
            let data = local + 30 + lNameLen + lExtraLen
            guard lNameLen == nameLen, data + usize <= cdOffset,
                  UnsafeRawBufferPointer(rebasing: b[(local + 30)..<(local + 30 + lNameLen)]).elementsEqual(UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLen)])) else {
                throw Failure.malformed(path: path, reason: "member \"\(name)\": the local header disagrees with the central directory or its data runs past it")
            }
            entries.append(Entry(name: name, offset: data, size: usize))
            p += 46 + nameLen + extraLen + commentLen
        }
        // No two members' data may overlap.
        let sorted = entries.sorted { $0.offset < $1.offset }
        for (x, y) in zip(sorted, sorted.dropFirst()) where x.offset + x.size > y.offset {
            throw Failure.malformed(path: path, reason: "members \"\(x.name)\" and \"\(y.name)\" overlap")
        }
        self.entries = entries
    }

    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }
}

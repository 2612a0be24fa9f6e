import Tensors

/// What `weightsmith inspect` shows: every tensor (name, dtype, shape, parameters, bytes and,
/// optionally, streamed statistics), totals per dtype, the shards and the metadata.
public struct InspectReport: Sendable {
    public struct Row: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: Shape
        public let parameters: Int
        public let bytes: Int
        /// The shard file holding the tensor.
        public let file: String
        /// Nil without `--stats`, and for dtypes without a numeric image (FP8, C64).
        public let stats: TensorStatistics?
    }

    public let path: String
    public let rows: [Row]
    public let shards: [String]
    public let indexFile: String?
    public let metadata: [String: String]
    public let withStats: Bool
    /// How a model reference was resolved (GGUF, adapter on base, hub cache...), when not plain safetensors.
    public let reference: String?
    public let referenceKind: String

    /// One tensor of a sparse delta: its dense shape and the kept entries.
    public struct SparseRow: Sendable {
        public let name: String
        public let shape: Shape
        public let kept: Int
        public var density: Double { shape.elementCount == 0 ? 0 : Double(kept) / Double(shape.elementCount) }
    }
    /// Per tensor of a sparse delta (nil for anything else); the delta is validated as `SparseDeltaFile` does.
    public let sparseRows: [SparseRow]?

    // Indexing reads the one field; iterating would copy (retain and release) every row.
    public var totalParameters: Int { rows.indices.reduce(0) { $0 + rows[$1].parameters } }
    public var totalBytes: Int { rows.indices.reduce(0) { $0 + rows[$1].bytes } }

    /// Builds the report; with `stats`, streams through every tensor once, releasing its pages after.
    public init(checkpoint c: Checkpoint, stats: Bool) throws {
        path = c.path
        withStats = stats
        shards = c.shards.map { $0.url.lastPathComponent }
        reference = c.referenceDescription
        referenceKind = c.referenceKind.rawValue
        indexFile = c.indexURL?.lastPathComponent
        metadata = c.metadata
        var rows: [Row] = []
        rows.reserveCapacity(c.tensorNames.count)
        var shardLabels: [ObjectIdentifier: String] = [:]  // one URL decomposition per shard, not per tensor
        for name in naturalSorted(c.tensorNames) {
            guard let info = c.info(name) else { continue }
            let file: String
            if let shard = c.shard(of: name) {
                if let l = shardLabels[ObjectIdentifier(shard)] { file = l } else {
                    file = shard.url.lastPathComponent
                    shardLabels[ObjectIdentifier(shard)] = file
                }
            } else {
                guard let l = c.fileLabel(of: name) else { continue }
                file = l
            }
            var s: TensorStatistics?
            if stats && info.dtype.isConvertibleToFloat32 {
                s = try c.withRawBytes(name) { raw in
                    do {
                        return try TensorStatistics.compute(raw, dtype: info.dtype, count: info.elementCount, context: name)
                    } catch let e as TensorError {
                        throw CheckpointError.conversion(path: c.shard(of: name)?.url.relativePath ?? c.path, tensor: name, underlying: e)
                    }
                }
                c.releasePages(name)
            }
            rows.append(Row(name: name, dtype: info.dtype, shape: info.shape, parameters: info.elementCount,
                            bytes: info.byteCount, file: file, stats: s))
        }
        self.rows = rows
        if SparseDelta.isSparseDelta(metadata: c.metadata), c.shards.count == 1 {
            let d = try SparseDeltaFile(file: c.shards[0])
            sparseRows = d.tensorNames.sorted(by: naturalOrder).map { SparseRow(name: $0, shape: d.shapes[$0]!, kept: d.count($0)) }
        } else {
            sparseRows = nil
        }
    }

    /// The sparse-delta section of the text report: totals, then one line per tensor.
    func sparseText(_ sparse: [SparseRow]) -> String {
        let kept = sparse.reduce(0) { $0 + $1.kept }, dense = sparse.reduce(0) { $0 + $1.shape.elementCount }
        func pct(_ x: Double) -> String { x == 0 ? "0%" : String(format: x >= 0.001 ? "%.2f%%" : "%.4f%%", 100 * x) }
        var out = "sparse delta: \(sparse.count) tensor\(sparse.count == 1 ? "" : "s"), \(groupedThousands(kept)) kept of "
            + "\(groupedThousands(dense)) dense entries (density \(pct(dense == 0 ? 0 : Double(kept) / Double(dense))))\n"
        let lines = [["tensor", "shape", "kept", "density"]] + sparse.map { [$0.name, $0.shape.description, groupedThousands($0.kept), pct($0.density)] }
        let widths = (0..<4).map { i in lines.map { $0[i].count }.max()! }
        for l in lines {
            out += "  " + l.enumerated().map { i, c in
                i >= 2 ? String(repeating: " ", count: widths[i] - c.count) + c : c + String(repeating: " ", count: widths[i] - c.count)
            }.joined(separator: "  ") + "\n"
        }
        return out
    }

    /// Parameters and bytes per dtype, largest first.
    public var dtypeTotals: [(dtype: DType, tensors: Int, parameters: Int, bytes: Int)] {
        var map: [DType: (Int, Int, Int)] = [:]
        for i in rows.indices {
            let (dtype, parameters, bytes) = (rows[i].dtype, rows[i].parameters, rows[i].bytes)
            let t = map[dtype] ?? (0, 0, 0)
            map[dtype] = (t.0 + 1, t.1 + parameters, t.2 + bytes)
        }
        return map.map { ($0.key, $0.value.0, $0.value.1, $0.value.2) }
            .sorted { ($0.bytes, $0.dtype.rawValue) > ($1.bytes, $1.dtype.rawValue) }
    }

    // MARK: text

    /// A fixed-width table, then totals, shards and metadata.
    /// `s` safe to print on a terminal: control characters (C0, DEL, C1), line and paragraph
    /// separators and bidirectional overrides are written as escapes (`\n`, `\t`, `\u{1B}`), so a
    /// hostile tensor name or metadata value cannot move the cursor, recolour or reorder the output.
    public static func printable(_ s: String) -> String {
        // Fast path: printable ASCII only (nearly every tensor name) needs no escape.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s }
        var out = ""
        for u in s.unicodeScalars {
            switch u.value {
            case 0x0A: out += "\\n"
            case 0x09: out += "\\t"
            case 0x0D: out += "\\r"
            case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    public func text() -> String {
        let printable = Self.printable
        var header = ["name", "dtype", "shape", "params", "bytes"]
        if withStats { header += ["min", "max", "mean", "std", "nan", "inf"] }
        // One flat array of cells (row-major, `columns` per row) rather than an array per row:
        // a header of a million tensors makes a million rows.
        let columns = header.count
        var cells: [String] = header
        cells.reserveCapacity(columns * (rows.count + 1))
        var widths = header.map(\.count)
        func add(_ cell: String) {
            let i = cells.count % columns
            widths[i] = max(widths[i], cell.count)
            cells.append(cell)
        }
        for i in rows.indices {
            add(printable(rows[i].name)); add(rows[i].dtype.rawValue); add(rows[i].shape.description)
            add(groupedThousands(rows[i].parameters)); add(groupedThousands(rows[i].bytes))
            if withStats {
                if let s = rows[i].stats {
                    for v in [s.min, s.max, s.mean, s.std] { add(v.map(formatStat) ?? "-") }
                    add(String(s.nanCount)); add(String(s.infCount))
                } else {
                    for c in ["n/a", "n/a", "n/a", "n/a", "-", "-"] { add(c) }
                }
            }
        }
        let numeric = (0..<columns).map { i in withStats ? (3...10).contains(i) : (3...4).contains(i) }
        var out = ""
        var line = ""
        for start in stride(from: 0, to: cells.count, by: columns) {
            line.removeAll(keepingCapacity: true)
            for i in 0..<columns {
                let cell = cells[start + i]
                if i > 0 { line += "  " }
                let pad = widths[i] - cell.count
                if numeric[i] {
                    if pad > 0 { line += String(repeating: " ", count: pad) }
                    line += cell
                } else {
                    line += cell
                    if pad > 0 { line += String(repeating: " ", count: pad) }
                }
            }
            out += line.trimmingWhitespace()
            out += "\n"
        }
        out += "\n"
        out += "total: \(rows.count) tensors, \(groupedThousands(totalParameters)) parameters, "
            + "\(groupedThousands(totalBytes)) bytes (\(ByteSize.format(totalBytes)))\n"
        for t in dtypeTotals {
            out += "  \(t.dtype.rawValue): \(t.tensors) tensor\(t.tensors == 1 ? "" : "s"), \(groupedThousands(t.parameters)) parameters, \(ByteSize.format(t.bytes))\n"
        }
        if let indexFile {
            out += "shards: \(shards.count) (\(printable(indexFile))): \(printable(shards.joined(separator: ", ")))\n"
        } else if shards.count > 1 {
            out += "files: \(printable(shards.joined(separator: ", ")))\n"
        }
        if let reference { out += "reference: \(referenceKind): \(printable(reference))\n" }
        if let sparseRows { out += sparseText(sparseRows) }
        if withStats {
            let nan = rows.reduce(0) { $0 + ($1.stats?.nanCount ?? 0) }, inf = rows.reduce(0) { $0 + ($1.stats?.infCount ?? 0) }
            out += "non-finite values: \(nan) NaN, \(inf) Inf\n"
        }
        if metadata.isEmpty {
            out += "metadata: (none)\n"
        } else {
            out += "metadata:\n"
            for k in metadata.keys.sorted() { out += "  \(printable(k)): \(printable(metadata[k]!))\n" }
        }
        return out
    }

    // MARK: JSON

    /// The same content as one JSON object (non-finite statistics as null).
    public func json() -> String {
        func str(_ s: String) -> String { SafetensorsWriter.jsonString(s) }
        func num(_ d: Double?) -> String {
            guard let d, d.isFinite else { return "null" }
            return "\(d)"
        }
        var out = "{\n  \"path\": \(str(path)),\n"
        out += "  \"shards\": [\(shards.map(str).joined(separator: ", "))],\n"
        out += "  \"index\": \(indexFile.map(str) ?? "null"),\n"
        out += "  \"reference_kind\": \(str(referenceKind)),\n  \"reference\": \(reference.map(str) ?? "null"),\n"
        out += "  \"metadata\": {" + metadata.keys.sorted().map { "\(str($0)): \(str(metadata[$0]!))" }.joined(separator: ", ") + "},\n"
        out += "  \"total_tensors\": \(rows.count),\n  \"total_parameters\": \(totalParameters),\n  \"total_bytes\": \(totalBytes),\n"
        out += "  \"dtypes\": {" + dtypeTotals.map {
            "\(str($0.dtype.rawValue)): {\"tensors\": \($0.tensors), \"parameters\": \($0.parameters), \"bytes\": \($0.bytes)}"
        }.joined(separator: ", ") + "},\n"
        out += "  \"tensors\": [\n"
        out += rows.map { r in
            var o = "    {\"name\": \(str(r.name)), \"dtype\": \(str(r.dtype.rawValue)), \"shape\": [\(r.shape.dims.map(String.init).joined(separator: ", "))], "
            o += "\"parameters\": \(r.parameters), \"bytes\": \(r.bytes), \"file\": \(str(r.file))"
            if withStats {
                if let s = r.stats {
                    o += ", \"stats\": {\"min\": \(num(s.min)), \"max\": \(num(s.max)), \"mean\": \(num(s.mean)), \"std\": \(num(s.std)), "
                    o += "\"finite\": \(s.finiteCount), \"nan\": \(s.nanCount), \"inf\": \(s.infCount)}"
                } else {
                    o += ", \"stats\": null"
                }
            }
            return o + "}"
        }.joined(separator: ",\n")
        out += "\n  ]"
        if let sparseRows {
            out += ",\n  \"sparse_delta\": [\n" + sparseRows.map { r in
                "    {\"name\": \(str(r.name)), \"shape\": [\(r.shape.dims.map(String.init).joined(separator: ", "))], \"kept\": \(r.kept), \"density\": \(r.density)}"
            }.joined(separator: ",\n") + "\n  ]"
        }
        out += "\n}\n"
        return out
    }
}

/// Four significant figures, scientific outside [1e-3, 1e5).
func formatStat(_ v: Double) -> String {
    let a = abs(v)
    if v == 0 { return "0" }
    if a >= 1e-3 && a < 1e5 {
        let digits = a >= 1000 ? 1 : a >= 100 ? 2 : a >= 10 ? 3 : a >= 1 ? 4 : a >= 0.1 ? 5 : a >= 0.01 ? 6 : 7
        return formatFixed(v, digits)
    }
    var e = 0
    var m = a
    while m >= 10 { m /= 10; e += 1 }
    while m < 1 { m *= 10; e -= 1 }
    var mant = formatFixed(m, 3)
    if mant == "10.000" { mant = "1.000"; e += 1 }
    return (v < 0 ? "-" : "") + mant + "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
}

/// Orders names with embedded numbers numerically: `layers.2` before `layers.10`. Runs of ASCII
/// digits compare by value (leading zeros ignored, then the shorter run first); everything else
/// by Unicode scalar value (UTF-8 byte order is scalar order). No allocation: `inspect` sorts a
/// million names with it.
public func naturalOrder(_ a: String, _ b: String) -> Bool {
    var a = a, b = b
    return a.withUTF8 { x in b.withUTF8 { y in naturalOrder(x, y) } }
}

func naturalOrder(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }
    var i = 0, j = 0
    while i < a.count, j < b.count {
        let cx = a[i], cy = b[j]
        if isDigit(cx) && isDigit(cy) {
            var ei = i, ej = j
            while ei < a.count, isDigit(a[ei]) { ei += 1 }
            while ej < b.count, isDigit(b[ej]) { ej += 1 }
            var si = i, sj = j
            while si < ei, a[si] == 0x30 { si += 1 }
            while sj < ej, b[sj] == 0x30 { sj += 1 }
            if ei - si != ej - sj { return ei - si < ej - sj }
            var k = 0
            while k < ei - si {
                if a[si + k] != b[sj + k] { return a[si + k] < b[sj + k] }
                k += 1
            }
            if ei - i != ej - j { return ei - i < ej - j }
            i = ei
            j = ej
            continue
        }
        if cx != cy { return cx < cy }
        i += 1
        j += 1
    }
    return i == a.count && j < b.count
}

/// `names` sorted by `naturalOrder`. The names are copied once into one byte buffer and the sort
/// compares slices of it, so the comparisons neither retain nor release (a million names from a
/// large header sort in about a second).
public func naturalSorted(_ names: [String]) -> [String] {
    var arena: [UInt8] = []
    arena.reserveCapacity(names.reduce(0) { $0 + $1.utf8.count })
    var starts: [Int] = [0]
    starts.reserveCapacity(names.count + 1)
    for n in names {
        arena.append(contentsOf: n.utf8)
        starts.append(arena.count)
    }
    var order = Array(0..<names.count)
    arena.withUnsafeBufferPointer { a in
        starts.withUnsafeBufferPointer { s in
            order.sort { x, y in
                naturalOrder(UnsafeBufferPointer(rebasing: a[s[x]..<s[x + 1]]), UnsafeBufferPointer(rebasing: a[s[y]..<s[y + 1]]))
            }
        }
    }
    return order.map { names[$0] }
}

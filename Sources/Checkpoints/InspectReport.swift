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

    public var totalParameters: Int { rows.reduce(0) { $0 + $1.parameters } }
    public var totalBytes: Int { rows.reduce(0) { $0 + $1.bytes } }

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
        for name in c.tensorNames.sorted(by: naturalOrder) {
            guard let info = c.info(name), let file = c.fileLabel(of: name) else { continue }
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
        for r in rows {
            let t = map[r.dtype] ?? (0, 0, 0)
            map[r.dtype] = (t.0 + 1, t.1 + r.parameters, t.2 + r.bytes)
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
        var table: [[String]] = [header]
        for r in rows {
            var line = [printable(r.name), r.dtype.rawValue, r.shape.description, groupedThousands(r.parameters), groupedThousands(r.bytes)]
            if withStats {
                if let s = r.stats {
                    line += [s.min, s.max, s.mean, s.std].map { $0.map(formatStat) ?? "-" }
                    line += [String(s.nanCount), String(s.infCount)]
                } else {
                    line += ["n/a", "n/a", "n/a", "n/a", "-", "-"]
                }
            }
            table.append(line)
        }
        let numeric = Set(withStats ? [3, 4, 5, 6, 7, 8, 9, 10] : [3, 4])
        var widths = [Int](repeating: 0, count: header.count)
        for line in table { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for line in table {
            let cells = line.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric.contains(i) ? pad + cell : cell + pad
            }
            out += cells.joined(separator: "  ").trimmingWhitespace() + "\n"
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

/// Orders names with embedded numbers numerically: `layers.2` before `layers.10`.
public func naturalOrder(_ a: String, _ b: String) -> Bool {
    var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
    var x = i.next(), y = j.next()
    while let cx = x, let cy = y {
        let dx = ("0"..."9").contains(cx), dy = ("0"..."9").contains(cy)
        if dx && dy {
            var nx = "", ny = ""
            while let c = x, ("0"..."9").contains(c) { nx.unicodeScalars.append(c); x = i.next() }
            while let c = y, ("0"..."9").contains(c) { ny.unicodeScalars.append(c); y = j.next() }
            let tx = String(nx.drop { $0 == "0" }), ty = String(ny.drop { $0 == "0" })
            if tx.count != ty.count { return tx.count < ty.count }
            if tx != ty { return tx < ty }
            if nx.count != ny.count { return nx.count < ny.count }
            continue
        }
        if cx != cy { return cx.value < cy.value }
        x = i.next()
        y = j.next()
    }
    return x == nil && y != nil
}

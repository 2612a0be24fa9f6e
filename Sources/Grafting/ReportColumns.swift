import Foundation

/// The fixed-width text tables and JSON of the grafting and sparse fine-tuning reports.
public enum ReportColumns {
    /// Rows of cells as left-aligned columns two spaces apart, without trailing spaces.
    public static func render(_ lines: [[String]]) -> String {
        guard let first = lines.first else { return "" }
        let widths = (0..<first.count).map { c in lines.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return lines.map { row in
            let text = row.enumerated().map { c, s in c == row.count - 1 ? s : s + String(repeating: " ", count: widths[c] - s.count) }
                .joined(separator: "  ")
            return String(text.reversed().drop { $0 == " " }.reversed())
        }.joined(separator: "\n")
    }

    /// Sorted keys, pretty-printed.
    public static func json<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: try enc.encode(value), as: UTF8.self)
    }
}

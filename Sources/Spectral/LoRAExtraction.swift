import Foundation
import Checkpoints
import Tensors

/// LoRA extraction from a full fine-tune: per matrix, the best rank-r approximation of
/// ΔW = W − W0 (Eckart–Young, by truncated SVD), factored as B = U_r Σ_r^½, A = Σ_r^½ V_rᵀ and
/// written as a PEFT adapter with lora_alpha = r (scale 1), so PEFT's merged update is U_r Σ_r V_rᵀ.
public enum LoRAExtraction {
    public struct Entry: Sendable, Codable {
        public var name: String
        public var rows: Int
        public var cols: Int
        public var rank: Int
        /// Σ_{i<r} σ_i² / Σ σ_i²: the fraction of ‖ΔW‖_F² the adapter keeps.
        public var capturedEnergy: Double
        /// ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F = sqrt(1 − capturedEnergy).
        public var relativeError: Double
        public var frobeniusUpdate: Double
    }

    public struct Result: Sendable, Codable {
        public var output: String
        public var rank: Int
        public var entries: [Entry]
        /// Energy captured over the whole model (Σ kept σ² / Σ all σ²).
        public var totalCapturedEnergy: Double
        public var skippedUnchanged: [String]
    }

    /// Extracts and writes the adapter. Matrices equal in base and tuned are skipped (listed in
    /// the result); the rank is capped at min(rows, cols) per matrix (rank_pattern records it).
    /// The output goes through `OutputFolder`, checked before any SVD: never an input, inside or
    /// above one; an existing adapter is replaced only with `force`, and only a weightsmith output.
    /// What `extract` would write (`--dry-run`): OUT checked against the inputs, the selected
    /// matrices with their shapes and ranks, and the adapter's size in bytes (F32 A and B).
    /// Matrices identical in both models are only found (and skipped) by `extract`.
    public static func plan(base: Checkpoint, tuned: Checkpoint, rank: Int, modules: String?, output: URL, force: Bool = false)
        throws -> (matrices: [(name: String, rows: Int, cols: Int, rank: Int)], bytes: Int) {
        _ = try OutputFolder.prepare(output, inputs: [base, tuned].flatMap(\.sourceURLs), force: force, command: "extract-lora")
        let ft = FineTune(label: "tuned", path: tuned.path, source: .dense(tuned))
        let names = try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: modules)
        var matrices: [(name: String, rows: Int, cols: Int, rank: Int)] = []
        var bytes = 0
        for name in names {
            guard let dims = base.info(name)?.shape.dims, dims.count == 2 else { continue }
            let r = min(rank, dims[0], dims[1])
            matrices.append((name, dims[0], dims[1], r))
            bytes += 4 * r * (dims[0] + dims[1])
        }
        return (matrices, bytes)
    }

    public static func extract(base: Checkpoint, tuned: Checkpoint, rank: Int, modules: String?, output: URL,
                               baseName: String? = nil, force: Bool = false, allowNonFinite: Bool = false) throws -> Result {
        let inputs = [base, tuned].flatMap(\.sourceURLs)
        let out = try OutputFolder.prepare(output, inputs: inputs, force: force, command: "extract-lora")
        let ft = FineTune(label: "tuned", path: tuned.path, source: .dense(tuned))
        let names = try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: modules)
        var mods: [LoRAAdapterWriter.Module] = []
        var entries: [Entry] = []
        var skipped: [String] = []
        var kept = 0.0, total = 0.0
        for name in names {
            let w0 = try SpectralAnalysis.finite(try base.tensor(name), name, base.path)
            let w = try SpectralAnalysis.finite(try tuned.tensor(name), name, tuned.path)
            var d = w
            var changed = false
            for i in d.scalars.indices { d.scalars[i] -= w0.scalars[i]; if d.scalars[i] != 0 { changed = true } }
            guard changed else { skipped.append(name); continue }
            let (m, n) = (d.shape[0], d.shape[1])
            let r = min(rank, m, n)
            let f = try svd(d)
            var a = [Float](repeating: 0, count: r * n), b = [Float](repeating: 0, count: m * r)
            for j in 0..<r {
                let h = f.s[j].squareRoot()
                for c in 0..<n { a[j * n + c] = h * f.vt.scalars[j * n + c] }
                for i in 0..<m { b[i * r + j] = h * f.u.scalars[i * f.u.shape[1] + j] }
            }
            let e = SpectrumStatistics.energy(top: r, of: f.s)
            let fro2 = f.s.reduce(0.0) { $0 + Double($1) * Double($1) }
            kept += e * fro2; total += fro2
            let module = name.hasSuffix(".weight") ? String(name.dropLast(7)) : name
            mods.append(.init(name: module, a: Tensor(shape: [r, n], scalars: a), b: Tensor(shape: [m, r], scalars: b)))
            entries.append(Entry(name: name, rows: m, cols: n, rank: r, capturedEnergy: e, relativeError: max(0, 1 - e).squareRoot(),
                                 frobeniusUpdate: fro2.squareRoot()))
        }
        guard !mods.isEmpty else { throw SpectralError.noMatrices(reason: "every selected matrix is identical in base and tuned") }
        try out.write { staging in
            try LoRAAdapterWriter.writeFiles(into: staging, modules: mods, baseModelNameOrPath: baseName,
                                             metadata: ["format": "pt", "weightsmith": "extract-lora rank \(rank)"], allowNonFinite: allowNonFinite)
        }
        return Result(output: output.path, rank: rank, entries: entries, totalCapturedEnergy: total > 0 ? kept / total : 1, skippedUnchanged: skipped)
    }

    public static func render(_ r: Result) -> String {
        var out = "extracted rank-\(r.rank) LoRA -> \(r.output)\n"
        let w = max(6, r.entries.map(\.name.count).max() ?? 0)
        out += ReportText.pad("matrix", w + 2) + ReportText.pad("shape", 11) + ReportText.pad("r", 4) + ReportText.pad("‖ΔW‖F", 10) + ReportText.pad("energy kept", 13) + "rel. error\n"
        for e in r.entries {
            out += ReportText.pad(e.name, w + 2) + ReportText.pad("\(e.rows)x\(e.cols)", 11) + ReportText.pad("\(e.rank)", 4)
                + ReportText.pad(String(format: "%.4f", e.frobeniusUpdate), 10) + ReportText.pad(String(format: "%.1f%%", e.capturedEnergy * 100), 13)
                + String(format: "%.3f", e.relativeError) + "\n"
        }
        out += String(format: "total: %.1f%% of Σ‖ΔW‖F² kept in %d matrices", r.totalCapturedEnergy * 100, r.entries.count)
        if !r.skippedUnchanged.isEmpty { out += "; \(r.skippedUnchanged.count) unchanged matrices skipped" }
        return out
    }
}

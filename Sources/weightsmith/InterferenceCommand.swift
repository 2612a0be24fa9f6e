import ArgumentParser
import Checkpoints
import Foundation
import Spectral

struct InterferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interference",
        abstract: "Interference between task vectors before a merge: cosine, TIES sign conflicts, spectral overlap, per pair and per layer / module type.",
        discussion: """
        Task vectors τ_t = T_t − BASE over every 2-D non-embedding tensor (or --modules). Per pair: the cosine of \
        the flattened τ's; TIES's sign conflict (Yadav et al. 2023, §3): each τ trimmed to its top --density \
        entries by magnitude over the whole model, then the share of entries kept in both with opposite signs; \
        and the overlap φ = ‖U_iᵀ U_j‖_F² / r of the top-r left singular subspaces of each matrix's τ's \
        (the subspace view of TSV, Gargiulo et al. 2025). Fine-tunes are full checkpoints or PEFT LoRA adapters.
        """)

    @Option(help: "The base checkpoint.") var base: String
    @Argument(help: "Two or more fine-tunes of the base (checkpoints or adapter folders).") var tasks: [String]
    @Option(help: "TIES trim: share of each task vector's entries kept by magnitude.") var density = 0.2
    @Option(help: "r of the top-r singular subspaces compared.") var rank = 8
    @Option(help: "Only matrices whose tensor name matches this regular expression.") var modules: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Write a heat map (SVG) of every pair: layers down, module types across, one cell per matrix.") var svg: String?
    @Option(help: "The heat map's metric: sign-conflict, cosine or overlap.") var svgMetric = "sign-conflict"
    @Flag(help: "Replace the --svg file when it is a previous weightsmith output.") var force = false

    func validate() throws {
        guard tasks.count >= 2 else { throw ValidationError("interference needs at least two fine-tunes") }
        guard density > 0 && density <= 1 else { throw ValidationError("--density must be in (0, 1]") }
        guard rank > 0 else { throw ValidationError("--rank must be positive") }
        guard InterferencePlot.Metric(rawValue: svgMetric) != nil else {
            throw ValidationError("--svg-metric must be one of \(InterferencePlot.Metric.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        try reportingErrors {
            // The plot's path is checked before any work (never an input; an existing file only with --force).
            let plotOut = try svg.map {
                try OutputFolder.prepare(URL(fileURLWithPath: $0), inputs: ([base] + tasks).map { URL(fileURLWithPath: $0) },
                                         force: force, command: "interference", kind: .file)
            }
            let baseCkpt = try Checkpoint(path: base)
            var fts = try tasks.map { try FineTune.open(path: $0) }
            if Set(fts.map(\.label)).count != fts.count { for i in fts.indices { fts[i].label = fts[i].path } }
            var o = Interference.Options()
            o.density = density; o.rank = rank; o.modules = modules
            let report = try Interference.run(base: baseCkpt, fineTunes: fts, options: o)
            if let plotOut, let svg {
                let picture = InterferencePlot.svg(report, metric: InterferencePlot.Metric(rawValue: svgMetric)!)
                try plotOut.write { file in try Data(picture.utf8).write(to: file) }
                if !quiet { FileHandle.standardError.write(Data("wrote \(svg)\n".utf8)) }
            }
            print(json ? try report.json() : Interference.text(report), terminator: json ? "\n" : "")
        }
    }
}

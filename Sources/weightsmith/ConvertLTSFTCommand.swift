import ArgumentParser
import Checkpoints
import Foundation
import Tensors

struct ConvertLTSFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-lt-sft",
        abstract: "Convert LT-SFT's pytorch_diff.bin (Ansell et al. 2022) to a weightsmith sparse delta, without running pickled code.",
        discussion: """
        Reads the torch.save archive with a restricted pickle reader (tensors, torch.Size, OrderedDict and numpy \
        integer scalars only; anything else is refused), decodes the delta-coded, first-dimension-fastest indices \
        in Int64, and writes OUT/sft.safetensors (row-major indices, values in their stored dtype) and README.md; \
        use it as BASE+OUT. Dense 'abs' tensors (a trained head, applied by replacement) cannot be part of a \
        sparse delta: the conversion stops when there are any, unless --skip-abs (they are then listed as skipped).
        """)

    @Argument(help: "pytorch_diff.bin, or the folder holding it.") var input: String
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty).") var output: String
    @Flag(help: "Convert the diffs and leave out the dense 'abs' tensors (listed).") var skipAbs = false
    @Flag(help: "Replace OUT when it is a previous weightsmith output.") var force = false
    @Flag(help: "Read the diff and check OUT, print what would be written, then stop (nothing is written).") var dryRun = false

    @OptionGroup var quietOption: QuietOption
    @OptionGroup var nonFinite: NonFiniteOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try reportingErrors {
            var isDir: ObjCBool = false
            let file = FileManager.default.fileExists(atPath: input, isDirectory: &isDir) && isDir.boolValue
                ? (input as NSString).appendingPathComponent("pytorch_diff.bin") : input
            let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: [URL(fileURLWithPath: input)], force: force, command: "convert-lt-sft")
            let d = try LTSFTDiff(path: file)
            if !d.absNames.isEmpty && !skipAbs {
                throw ValidationError("\(file) holds \(d.absNames.count) dense 'abs' tensor\(d.absNames.count == 1 ? "" : "s") (\(d.absNames.joined(separator: ", "))), which a sparse delta cannot hold; give --skip-abs to convert the diffs without them")
            }
            let kept = d.diffs.reduce(0) { $0 + $1.indices.count }, dense = d.diffs.reduce(0) { $0 + $1.shape.elementCount }
            var card = "# Sparse delta converted from LT-SFT\n\nConverted by `weightsmith convert-lt-sft` from `\(file)` (Ansell et al. 2022's pytorch_diff.bin): "
            card += "\(d.diffs.count) tensors, \(kept) entries of \(dense).\n"
            if !d.absNames.isEmpty { card += "\nSkipped dense 'abs' tensors: \(d.absNames.joined(separator: ", ")).\n" }
            if dryRun {
                // Row-major Int64 indices and the stored values (as SparseDeltaWriter lays them out), before the header.
                let bytes = d.diffs.reduce(0) { $0 + $1.indices.count * (8 + $1.dtype.byteSize) }
                print("would convert \(d.diffs.count) tensors (\(kept) of \(dense) entries) from \(file)")
                if !d.absNames.isEmpty { print("would skip \(d.absNames.count) dense 'abs' tensor\(d.absNames.count == 1 ? "" : "s"): \(d.absNames.joined(separator: ", "))") }
                print("would write \(output): sft.safetensors (about \(ByteSize.format(bytes))), README.md")
                return
            }
            try out.write { staging in
                try SparseDeltaWriter.write(d.diffs, to: staging.appendingPathComponent("sft.safetensors"), extraMetadata: ["weightsmith.converted_from": "lt-sft pytorch_diff.bin"],
                                            allowNonFinite: nonFinite.allowNonFinite)
                try Data(card.utf8).write(to: staging.appendingPathComponent("README.md"))
            }
            print("converted \(d.diffs.count) tensors (\(kept) of \(dense) entries) from \(file)")
            if !d.absNames.isEmpty { print("skipped \(d.absNames.count) dense 'abs' tensor\(d.absNames.count == 1 ? "" : "s"): \(d.absNames.joined(separator: ", "))") }
            print("wrote \(output)")
        }
    }
}

import ArgumentParser
import Checkpoints
import Foundation
import Grafting

struct MasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "masks",
        abstract: "Graft and sparse fine-tune masks as task similarity.",
        subcommands: [Overlap.self]
    )

    struct Overlap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pairwise overlap of the masks of sparse deltas (graft or LT-SFT outputs), overall, per layer and per module type.",
            discussion: """
            A mask is the set of entries a sparse delta lists (Panigrahi et al. 2023, abstract: graft regions of different \
            tasks are nearly disjoint; their overlap tracks task similarity). Each MASK is a graft output folder \
            (its graft.safetensors), a folder holding one sparse delta (finetune --mode lt-sft), or a sparse-delta \
            .safetensors file; NAME=MASK sets the label (default: the folder or file name). Columns: |A|, |B|, \
            |A∧B|, the shares |A∧B|/|A| and |A∧B|/|B|, Jaccard |A∧B|/|A∨B|, and |A∧B| over the random-mask \
            expectation |A|·|B|/N (1: as random, 0: disjoint), N the eligible entries recorded by the writer.
            """)

        @Argument(help: "Two or more masks: [NAME=]PATH.") var masks: [String]

        func validate() throws {
            guard masks.count >= 2 else { throw ValidationError("masks overlap needs at least two masks") }
        }

        func run() throws {
            try reportingErrors {
                var opened: [(String, SparseDeltaFile)] = []
                for spec in masks {
                    var label: String?, path = spec
                    if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
                        label = String(spec[..<eq]); path = String(spec[spec.index(after: eq)...])
                    }
                    opened.append((label ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, try SparseDeltaFile(locating: path)))
                }
                var pairs: [MaskOverlap.Pair] = []
                for i in opened.indices {
                    for j in opened.indices where j > i {
                        pairs.append(try MaskOverlap.compare(opened[i].1, opened[j].1, first: opened[i].0, second: opened[j].0))
                    }
                }
                print(MaskOverlap.text(pairs), terminator: "")
            }
        }
    }
}

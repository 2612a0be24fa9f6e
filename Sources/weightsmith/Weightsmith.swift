import ArgumentParser
import Tensors

@main
struct Weightsmith: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weightsmith",
        abstract: "Merge, edit and diagnose fine-tuned transformer checkpoints on the CPU.",
        version: "0.1.0",
        subcommands: [
            DemoCommand.self,
            InspectCommand.self,
            ConvertCommand.self,
            SpectrumCommand.self, CompareCommand.self, ExtractLoRACommand.self,
            GenerateCommand.self,
            EvalCommand.self,
            FinetuneCommand.self,
            ConvertGGUFCommand.self, ConvertLTSFTCommand.self, MergeAdapterCommand.self,
            MergeCommand.self, TaskVectorCommand.self, ComposeCommand.self,
            EditCommand.self, TrainEditorCommand.self, FactsCommand.self,
            SoupCommand.self, SearchCommand.self,
            GraftCommand.self, MasksCommand.self,
            RepairCommand.self, InterferenceCommand.self,
        ]
    )

    /// Sets weightsmith's BLAS threading before any command runs (one BLAS thread unless
    /// OPENBLAS_NUM_THREADS is set: weightsmith parallelises itself; see `BLASThreads`).
    static func main() async {
        BLASThreads.configureDefault()
        await main(nil)
    }
}

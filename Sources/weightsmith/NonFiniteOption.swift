import ArgumentParser

/// `--allow-nonfinite`, the same flag on every command that writes or runs weights. Without it,
/// NaN/±Inf in a tensor to be written fail the command before the output is committed (naming
/// the tensor and the input it came from), and `eval`/`generate`/`edit` refuse a model whose
/// weights hold them.
struct NonFiniteOption: ParsableArguments {
    @Flag(name: .customLong("allow-nonfinite"),
          help: "Write (or run) NaN/infinite weights instead of failing; without it such a tensor fails the command and nothing is written.")
    var allowNonFinite = false
}

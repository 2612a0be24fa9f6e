import Foundation

/// The README.md written beside a merged checkpoint: method, inputs with their SHA-256, the
/// recipe, and what differs from mergekit where it matters.
public enum ModelCard {
    public static func render(_ plan: MergePlan, hashes: [String: String], outputName: String) -> String {
        var s = "---\nlibrary_name: transformers\ntags:\n- merge\n- weightsmith\n"
        let baseLabel = plan.recipe.baseModel
        if let baseLabel { s += "base_model: \(baseLabel)\n" }
        s += "---\n\n# \(outputName)\n\n"
        s += "Merged with weightsmith using **\(plan.method.name)**: \(plan.method.summary) "
        s += "(\(plan.method.reference)).\n\n"
        s += "## Inputs\n\n| model | role | file | SHA-256 |\n|---|---|---|---|\n"
        for inp in plan.inputs {
            let role = inp.label == baseLabel ? "base" : "model"
            for f in MergeExecutor.files(of: inp.checkpoint) {
                s += "| \(inp.label) | \(role) | \(URL(fileURLWithPath: f).lastPathComponent) | \(hashes[f].map { "`\($0)`" } ?? "not computed") |\n"
            }
        }
        let dtypes = Set(plan.jobs.map(\.outDType.recipeName)).sorted().joined(separator: ", ")
        s += "\n## Output\n\n\(plan.jobs.count) tensors, \(formatBytes(plan.outputBytes)), \(dtypes)."
        if plan.method.isRandomized { s += " Random seed: \(plan.seed)." }
        s += "\n"
        if !plan.notes.isEmpty { s += "\n" + plan.notes.map { "- \($0)\n" }.joined() }
        s += "\n## Recipe\n\n```yaml\n\(plan.recipe.yaml().trimmingCharacters(in: .newlines))\n```\n"
        return s
    }
}

/// Why a merge split across processes (`merge --plan-only`, `--part I/N`, `--assemble`) refused
/// to go on. Each case names the file (plan, input, shard or part receipt) and what was expected
/// against what was found.
public enum MergePartsError: Error, Equatable, CustomStringConvertible, Sendable {
    /// `--part` is not `I/N` with 1 ≤ I ≤ N.
    case badPartNumber(given: String, reason: String)
    /// The plan file cannot be read, is not JSON, or is not a weightsmith merge plan of this version.
    case badPlanFile(path: String, reason: String)
    /// The plan's content does not hash to its `plan_id`: it was edited.
    case planEdited(path: String, planID: String, contentHash: String)
    /// Re-planning the recipe the plan holds gives a different plan (a section named).
    case planChanged(path: String, section: String)
    /// An input file is not the one the plan was made from.
    case staleInput(file: String, reason: String)
    /// The output folder cannot be used by this plan's parts (an entry named).
    case outputNotUsable(path: String, reason: String)
    /// Part receipts are missing.
    case missingParts(output: String, parts: [Int], count: Int)
    /// A part receipt that does not belong to this assembly (other plan, other split, edited).
    case badPart(file: String, reason: String)
    /// A shard differs from what its part's receipt recorded.
    case badShard(file: String, part: String, reason: String)

    public var description: String {
        switch self {
        case let .badPartNumber(given, reason):
            return "--part \(given): \(reason)"
        case let .badPlanFile(path, reason):
            return "\(path): \(reason)"
        case let .planEdited(path, id, hash):
            return "\(path): the plan's content hashes to \(hash), but its plan_id is \(id): the file was edited after `merge --plan-only` wrote it; make the plan again"
        case let .planChanged(path, section):
            return "\(path): planning its recipe again gives a different \(section) than the plan file holds (the inputs' tensors or this weightsmith's planner changed since the plan was made); make the plan again"
        case let .staleInput(file, reason):
            return "input \(file) changed since the plan was made: \(reason); make the plan again (and rerun every part)"
        case let .outputNotUsable(path, reason):
            return "\(path): \(reason)"
        case let .missingParts(output, parts, count):
            let list = parts.map { "\($0)/\(count)" }.joined(separator: ", ")
            return "\(output): part\(parts.count == 1 ? "" : "s") \(list) \(parts.count == 1 ? "has" : "have") not finished (no receipt .weightsmith-part-I-of-\(count).json); run \(parts.count == 1 ? "it" : "them"), then assemble again"
        case let .badPart(file, reason):
            return "\(file): \(reason)"
        case let .badShard(file, part, reason):
            return "\(file) (written by part \(part)): \(reason); rerun that part, then assemble again"
        }
    }
}

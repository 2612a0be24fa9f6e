import Foundation
import Checkpoints

/// Which tensors a graft may take entries from.
///
/// The default follows the reference setting of Panigrahi et al. 2023 (§4, embeddings and the
/// head fixed): every tensor except embeddings (`embed_tokens`, GPT-2 `wte`/`wpe`), the output
/// head (`lm_head`) and normalisation weights (`*norm*`, GPT-2 `ln_*`). Biases inside the blocks
/// are eligible. With `include`, exactly the tensors whose name the regular expression matches
/// (searched anywhere in the name) are eligible, the default exclusions no longer apply.
public struct GraftEligibility: Sendable, CustomStringConvertible {
    public let include: String?
    private let regex: NSRegularExpression?

    public init(include: String? = nil) throws {
        self.include = include
        if let include {
            do { regex = try NamePattern.compile(include) } catch {
                throw GraftError.invalidPattern(pattern: include, reason: error.description)
            }
        } else {
            regex = nil
        }
    }

    public static let excludedByDefault = ["embed", "wte.", "wpe.", "lm_head", "norm", ".ln_", "ln_f."]

    public func isEligible(_ name: String) -> Bool {
        if let regex { return regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil }
        return !Self.excludedByDefault.contains { name.contains($0) }
    }

    public var description: String {
        include.map { "--include \"\($0)\"" } ?? "the default rule (all tensors but embeddings, lm_head and norms)"
    }
}

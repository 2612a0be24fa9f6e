import Foundation

/// The regular expressions of an `adapter_config.json`, compiled once per config.
///
/// `target_modules` given as a string is matched against the whole module path (PEFT's
/// `re.fullmatch`); each `rank_pattern` / `alpha_pattern` key `k` is wrapped as `^(.*\.)?(k)$`
/// (PEFT's `get_pattern_key`). Compiling per query cost one ICU compilation per tensor name and
/// pattern; here a config compiles each pattern exactly once, when it is decoded or its pattern
/// fields change.
///
/// Patterns from a file are untrusted: `AdapterPatterns.validated` refuses one longer than
/// `maxPatternLength` characters and one that does not compile, naming the file and the field.
/// A pattern set in code that does not compile never matches (the old behaviour, kept for
/// configs built programmatically, whose patterns are escaped literals).
final class AdapterPatterns: @unchecked Sendable {
    // @unchecked: NSRegularExpression is immutable after creation and documented as safe to
    // use from several threads; nothing here is mutated after init.
    let target: NSRegularExpression?
    let rank: [NSRegularExpression?]
    let alpha: [NSRegularExpression?]

    /// Longest pattern accepted from a file, in characters. Real PEFT configs use patterns of
    /// a few hundred characters at most; the bound keeps a hostile config from spending
    /// unbounded time and memory in the regex compiler.
    static let maxPatternLength = 4096

    static func wrappedTarget(_ p: String) -> String { "^(?:\(p))$" }
    static func wrappedKey(_ k: String) -> String { "^(.*\\.)?(\(k))$" }

    private init(target: NSRegularExpression?, rank: [NSRegularExpression?], alpha: [NSRegularExpression?]) {
        self.target = target; self.rank = rank; self.alpha = alpha
    }

    /// Compiles without validating; a pattern that does not compile becomes nil (never matches).
    convenience init(targetModules: AdapterConfig.TargetModules, rankKeys: [String], alphaKeys: [String]) {
        func compile(_ p: String) -> NSRegularExpression? { try? NSRegularExpression(pattern: p) }
        var target: NSRegularExpression? = nil
        if case let .regex(p) = targetModules { target = compile(Self.wrappedTarget(p)) }
        self.init(target: target, rank: rankKeys.map { compile(Self.wrappedKey($0)) }, alpha: alphaKeys.map { compile(Self.wrappedKey($0)) })
    }

    /// Compiles every pattern of a config read from `path`, or throws
    /// `AdapterError.invalidPattern` naming the file and the field (`target_modules`,
    /// `rank_pattern` or `alpha_pattern`).
    static func validated(targetModules: AdapterConfig.TargetModules, rankKeys: [String], alphaKeys: [String],
                          path: String) throws -> AdapterPatterns {
        func compile(_ raw: String, wrapped: String, field: String) throws -> NSRegularExpression {
            guard raw.count <= maxPatternLength else {
                throw AdapterError.invalidPattern(path: path, field: field, pattern: raw,
                                                  reason: "is \(raw.count) characters long; at most \(maxPatternLength) are accepted")
            }
            do { return try NSRegularExpression(pattern: wrapped) } catch {
                throw AdapterError.invalidPattern(path: path, field: field, pattern: raw, reason: "is not a valid regular expression")
            }
        }
        var target: NSRegularExpression? = nil
        if case let .regex(p) = targetModules { target = try compile(p, wrapped: wrappedTarget(p), field: "target_modules") }
        let rank = try rankKeys.map { try compile($0, wrapped: wrappedKey($0), field: "rank_pattern") }
        let alpha = try alphaKeys.map { try compile($0, wrapped: wrappedKey($0), field: "alpha_pattern") }
        return AdapterPatterns(target: target, rank: rank, alpha: alpha)
    }

    static func matches(_ re: NSRegularExpression?, _ s: String) -> Bool {
        guard let re else { return false }
        return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}

import Foundation

/// One single-fact edit: make the model continue `prompt` with `target`.
///
/// - `prompt` is plain text ("The capital of France is") or a template with `{}` standing for
///   `subject` (CounterFact style, "The capital of {} is"); `text` is the filled prompt.
/// - `subject` locates the key token for ROME (the subject's last token). When nil it is guessed:
///   the last run of capitalised words after the prompt's first word ("France"); failing that,
///   ROME and MEMIT refuse the request (`keySubject()`) rather than key on the whole prompt.
/// - `target` is appended to the prompt verbatim: give its leading space (" Rome").
/// - `paraphrases`: other prompts that should now also yield `target` (generalisation).
/// - `localityPrompts`: unrelated prompts whose predictions should not change.
/// - `localityAnswers`: when given (one per locality prompt), each prompt's true answer: the
///   CounterFact neighbourhood score asks that it stay more likely than `target`.
/// - `generationPrompts`: prompts for the fluency (n-gram entropy) measurement.
/// - `relation`, `split`: where the record came from (`weightsmith facts make`).
public struct EditRequest: Sendable, Equatable, Codable {
    public var prompt: String
    public var subject: String?
    public var target: String
    public var groundTruth: String?
    public var paraphrases: [String]
    public var localityPrompts: [String]
    public var localityAnswers: [String] = []
    public var generationPrompts: [String] = []
    public var relation: String? = nil
    public var split: String? = nil

    public init(prompt: String, subject: String? = nil, target: String, groundTruth: String? = nil,
                paraphrases: [String] = [], localityPrompts: [String] = [], localityAnswers: [String] = [],
                generationPrompts: [String] = [], relation: String? = nil, split: String? = nil) {
        self.prompt = prompt; self.subject = subject; self.target = target; self.groundTruth = groundTruth
        self.paraphrases = paraphrases; self.localityPrompts = localityPrompts
        self.localityAnswers = localityAnswers; self.generationPrompts = generationPrompts
        self.relation = relation; self.split = split
    }

    /// The prompt with `{}` replaced by the subject.
    public var text: String {
        guard prompt.contains("{}") else { return prompt }
        return prompt.replacingOccurrences(of: "{}", with: subject ?? "")
    }

    /// The subject to use: the given one, else the last run of capitalised words after the first
    /// word (`guessedSubject`), else the whole prompt.
    public var resolvedSubject: String { (subject.flatMap { $0.isEmpty ? nil : $0 }) ?? guessedSubject ?? text }

    /// The subject for an editor that needs one (ROME, MEMIT: the key is at its last token): the
    /// given one or the guess; throws when there is neither (a lowercase prompt such as
    /// "the capital of france is" has no capitalised word to guess from).
    public func keySubject() throws -> String {
        if let s = subject, !s.isEmpty { return s }
        guard let g = guessedSubject else {
            throw EditError.invalidRequest("cannot guess the subject of \"\(text)\" (no capitalised word after the first); give it (--subject, or \"subject\" in the record)")
        }
        return g
    }

    /// The last run of capitalised words after the first word of the prompt; nil when none.
    public var guessedSubject: String? {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var run: [String] = []
        var best: [String] = []
        for (i, w) in words.enumerated() {
            let core = w.trimmingCharacters(in: .punctuationCharacters)
            if i > 0, let f = core.first, f.isUppercase { run.append(core) } else {
                if !run.isEmpty { best = run }
                run = []
            }
        }
        if !run.isEmpty { best = run }
        return best.isEmpty ? nil : best.joined(separator: " ")
    }

    /// Checks the fields: non-empty prompt and target, the subject inside the prompt.
    public func validate() throws {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw EditError.invalidRequest("the prompt is empty") }
        guard !target.isEmpty else { throw EditError.invalidRequest("the target is empty") }
        if prompt.contains("{}") && (subject ?? "").isEmpty {
            throw EditError.invalidRequest("the prompt \"\(prompt)\" is a template but no subject is given")
        }
        if !localityAnswers.isEmpty && localityAnswers.count != localityPrompts.count {
            throw EditError.invalidRequest("\(localityAnswers.count) neighbourhood answers for \(localityPrompts.count) neighbourhood prompts")
        }
        guard text.range(of: resolvedSubject, options: .backwards) != nil else {
            throw EditError.invalidRequest("the subject \"\(resolvedSubject)\" does not occur in the prompt \"\(text)\"")
        }
    }
}

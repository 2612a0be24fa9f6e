/// A batch of B token sequences of equal length T with next-token targets, for training.
///
/// `targets[b][t]` is the id the model should predict at position t (normally `tokens[b][t + 1]`),
/// or -1 where the position is not scored (prompt tokens, padding, the last position). Padding
/// goes at the end of a sequence: attention is causal, so it never changes earlier positions.
///
/// A row may hold several independent sequences laid end to end ("packing", as the packed
/// evaluation does): `segments[b]` lists their lengths, summing to T. Each segment starts at
/// position 0 and attends only to itself (block-diagonal causal attention), so a packed row
/// gives the loss and gradients of its segments run one by one, while every linear layer sees
/// all rows at once and no padding is computed.
public struct TrainingBatch: Sendable, Equatable {
    public let tokens: [[Int]]
    public let targets: [[Int]]
    /// Per row, the lengths of the sequences packed into it (one segment of length T when not packed).
    public let segments: [[Int]]
    /// Positions scored against a whole next-token distribution instead of one id (their target
    /// is -1): the loss adds the cross-entropy `−Σ_v p_v log q_v`, whose gradient is that of
    /// KL(p ‖ q) (a distillation or locality term). `probabilities` has the model's vocabulary
    /// size, entries ≥ 0 summing to 1 (checked by the training forward).
    public struct SoftTarget: Sendable, Equatable {
        public let sequence: Int
        public let position: Int
        public let probabilities: [Float]
        public init(sequence: Int, position: Int, probabilities: [Float]) {
            self.sequence = sequence
            self.position = position
            self.probabilities = probabilities
        }
    }
    public let softTargets: [SoftTarget]

    public init(tokens: [[Int]], targets: [[Int]], softTargets: [SoftTarget] = [], segments: [[Int]]? = nil) throws {
        guard let T = tokens.first?.count, T > 0, tokens.allSatisfy({ $0.count == T }),
              targets.count == tokens.count, targets.allSatisfy({ $0.count == T }) else {
            throw ModelError.invalidInput("a training batch needs B token sequences and B target sequences, all of the same non-zero length")
        }
        let segments = segments ?? tokens.map { _ in [T] }
        guard segments.count == tokens.count else {
            throw ModelError.invalidInput("a packed training batch needs one list of segment lengths per row (\(tokens.count) rows, \(segments.count) lists)")
        }
        for (b, row) in segments.enumerated() where row.isEmpty || row.contains(where: { $0 <= 0 }) || row.reduce(0, +) != T {
            throw ModelError.invalidInput("row \(b) of a packed training batch: segment lengths must be positive and sum to the row length \(T) (got \(row.prefix(8).map(String.init).joined(separator: ", "))\(row.count > 8 ? ", ..." : ""))")
        }
        var seen = Set<Int>()
        for s in softTargets {
            guard (0..<tokens.count).contains(s.sequence), (0..<T).contains(s.position), targets[s.sequence][s.position] == -1,
                  seen.insert(s.sequence * T + s.position).inserted else {
                throw ModelError.invalidInput("soft target at sequence \(s.sequence), position \(s.position): outside the batch, repeated, or on a position with a hard target")
            }
        }
        self.tokens = tokens
        self.targets = targets
        self.softTargets = softTargets
        self.segments = segments
    }

    public var batchSize: Int { tokens.count }
    public var length: Int { tokens[0].count }
    /// Positions that carry a hard target (soft targets are not counted).
    public var scoredTokens: Int { targets.reduce(0) { $0 + $1.filter { $0 >= 0 }.count } }

    /// Causal language modelling of whole sequences: every position predicts the next token.
    public static func languageModelling(_ sequences: [[Int]]) throws -> TrainingBatch {
        try TrainingBatch(tokens: sequences, targets: sequences.map { Array($0.dropFirst()) + [-1] })
    }

    /// Prompt/completion pairs, right-padded with `pad` to the longest: only completion tokens are
    /// scored (the position before each completion token predicts it).
    public static func completions(_ pairs: [(prompt: [Int], completion: [Int])], pad: Int = 0) throws -> TrainingBatch {
        let T = pairs.map { $0.prompt.count + $0.completion.count }.max() ?? 0
        var tokens: [[Int]] = [], targets: [[Int]] = []
        for (p, c) in pairs {
            let ids = p + c
            var tg = [Int](repeating: -1, count: T)
            for j in 0..<c.count where p.count - 1 + j >= 0 { tg[p.count - 1 + j] = c[j] }
            tokens.append(ids + [Int](repeating: pad, count: T - ids.count))
            targets.append(tg)
        }
        return try TrainingBatch(tokens: tokens, targets: targets)
    }

    /// Prompt/completion pairs packed end to end into one row (no padding): each pair is its own
    /// segment, only completion tokens are scored (as in `completions`, the first completion
    /// token of a pair without a prompt is not). The loss and gradients equal those of
    /// `completions` up to rounding, at the cost of the real tokens only.
    public static func packedCompletions(_ pairs: [(prompt: [Int], completion: [Int])]) throws -> TrainingBatch {
        var tokens: [Int] = [], targets: [Int] = [], lengths: [Int] = []
        for (i, (p, c)) in pairs.enumerated() {
            guard p.count + c.count > 0 else { throw ModelError.invalidInput("pair \(i + 1) has no tokens") }
            var tg = [Int](repeating: -1, count: p.count + c.count)
            for j in 0..<c.count where p.count - 1 + j >= 0 { tg[p.count - 1 + j] = c[j] }
            tokens += p + c
            targets += tg
            lengths.append(p.count + c.count)
        }
        return try TrainingBatch(tokens: [tokens], targets: [targets], segments: [lengths])
    }

    /// Consecutive runs of sequences (in order, by their `lengths`) of at most `tokens` tokens
    /// each, for packing one run per pass; a sequence longer than `tokens` forms a run of its own.
    public static func packedRuns(lengths: [Int], tokens: Int) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var first = 0, n = 0
        for (i, len) in lengths.enumerated() {
            if i > first, n + len > tokens { runs.append(first..<i); first = i; n = 0 }
            n += len
        }
        if first < lengths.count { runs.append(first..<lengths.count) }
        return runs
    }
}

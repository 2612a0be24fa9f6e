import Foundation

/// Progress with an estimate of the time left, on stderr (redrawn in place on a terminal).
final class ProgressLine {
    let label: String
    private(set) var start = Date()
    var last = Date.distantPast
    let tty = isatty(2) != 0
    init(label: String) { self.label = label }

    /// Counts time from now (a line made before other work, e.g. edit-eval's unedited row, would
    /// otherwise include that work in its elapsed time and estimate).
    func restart() { start = Date(); last = .distantPast }

    func update(_ done: Int, _ total: Int, extra: String = "") {
        let now = Date()
        guard done == total || now.timeIntervalSince(last) > (tty ? 0.2 : 10) else { return }
        last = now
        let el = now.timeIntervalSince(start)
        let eta = done > 0 ? el / Double(done) * Double(total - done) : 0
        let line = String(format: "%@ %d/%d, %.0f s elapsed, ETA %.0f s", label, done, total, el, eta) + extra
        FileHandle.standardError.write(Data(((tty ? "\r" : "") + line + (tty ? "" : "\n")).utf8))
    }

    func finish() { if tty { FileHandle.standardError.write(Data("\n".utf8)) } }

    /// Progress wherever stderr goes: redrawn on a terminal; otherwise a plain line
    /// "CMD: P% (d/n UNIT), X s elapsed, ETA Y s" (LABEL is "CMD: UNIT") at most every 30 s and
    /// never in the first 30 s, so short runs print nothing and logs of long ones show progress.
    func step(_ done: Int, _ total: Int) {
        guard total > 0 else { return }
        if tty {
            update(done, total)
            if done == total { finish() }
            return
        }
        let now = Date()
        guard done < total, now.timeIntervalSince(max(last, start)) >= 30 else { return }
        last = now
        let parts = label.components(separatedBy: ": ")
        let (cmd, unit) = parts.count >= 2 ? (parts[0], " " + parts.dropFirst().joined(separator: ": ")) : (label, "")
        let el = now.timeIntervalSince(start), eta = done > 0 ? el / Double(done) * Double(total - done) : 0
        FileHandle.standardError.write(Data(String(format: "%@: %d%% (%d/%d%@), %.0f s elapsed, ETA %.0f s\n",
                                                   cmd, 100 * done / total, done, total, unit, el, eta).utf8))
    }
}

/// A `ProgressLine` shared by parallel workers: each `tick()` counts one finished item.
final class SharedProgress: @unchecked Sendable {
    private let line: ProgressLine
    private let lock = NSLock()
    private var done = 0
    let total: Int
    init(label: String, total: Int) { line = ProgressLine(label: label); self.total = total }
    func tick() {
        lock.lock(); defer { lock.unlock() }
        done += 1
        line.step(done, total)
    }

    /// Progress for `total` items (nil with --quiet): redrawn on a terminal, plain lines every
    /// 30 s otherwise (`ProgressLine.step`).
    static func onTerminal(label: String, total: Int, quiet: Bool) -> SharedProgress? {
        quiet || total == 0 ? nil : SharedProgress(label: label, total: total)
    }
}

/// The per-item callback of a library loop that reports item names, counting them on `progress`.
func tickProgress(_ progress: SharedProgress?) -> (@Sendable (String) -> Void)? {
    guard let progress else { return nil }
    return { _ in progress.tick() }
}

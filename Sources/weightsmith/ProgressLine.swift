import Foundation

/// Progress with an estimate of the time left, on stderr (redrawn in place on a terminal).
final class ProgressLine {
    let label: String
    let start = Date()
    var last = Date.distantPast
    let tty = isatty(2) != 0
    init(label: String) { self.label = label }

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
        line.update(done, total)
        if done == total { line.finish() }
    }

    /// Progress for `total` items on a terminal (nil when stderr is not one, or with --quiet).
    static func onTerminal(label: String, total: Int, quiet: Bool) -> SharedProgress? {
        quiet || isatty(2) == 0 || total == 0 ? nil : SharedProgress(label: label, total: total)
    }
}

/// The per-item callback of a library loop that reports item names, counting them on `progress`.
func tickProgress(_ progress: SharedProgress?) -> (@Sendable (String) -> Void)? {
    guard let progress else { return nil }
    return { _ in progress.tick() }
}

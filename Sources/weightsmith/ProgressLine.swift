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

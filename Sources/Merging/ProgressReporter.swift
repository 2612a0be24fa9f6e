import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress with ETA on stderr: a redrawn bar when stderr is a terminal, a plain line every
/// 10 % otherwise (logs and CI). Progress is measured in bytes of output, which the plan knows
/// exactly before the merge starts.
public final class ProgressReporter: @unchecked Sendable {
    let total: Int
    let itemCount: Int
    let label: String
    let isTerminal: Bool
    let enabled: Bool
    let start = Date()
    var lastDraw = Date.distantPast
    var lastDecile = -1

    public init(label: String, totalBytes: Int, items: Int, enabled: Bool = true, isTerminal: Bool = isatty(2) != 0) {
        self.label = label
        self.total = max(1, totalBytes)
        self.itemCount = items
        self.enabled = enabled
        self.isTerminal = isTerminal
    }

    public func update(doneBytes: Int, doneItems: Int) {
        guard enabled else { return }
        let f = min(1, Double(doneBytes) / Double(total))
        let elapsed = Date().timeIntervalSince(start)
        let eta = f > 0 ? elapsed * (1 - f) / f : 0
        if isTerminal {
            let now = Date()
            guard now.timeIntervalSince(lastDraw) > 0.1 || doneItems == itemCount else { return }
            lastDraw = now
            let width = 30
            let filled = Int(f * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            emit("\r\(label) [\(bar)] \(Int(f * 100))% \(doneItems)/\(itemCount) tensors, \(Self.seconds(elapsed)) elapsed, ETA \(Self.seconds(eta))   ")
        } else {
            let decile = Int(f * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            emit("\(label): \(decile * 10)% (\(doneItems)/\(itemCount) tensors), \(Self.seconds(elapsed)) elapsed, ETA \(Self.seconds(eta))\n")
        }
    }

    public func finish(_ message: String) {
        guard enabled else { return }
        emit((isTerminal ? "\r\u{1B}[K" : "") + message + "\n")
    }

    func emit(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }

    static func seconds(_ s: Double) -> String {
        s < 60 ? String(format: "%.1fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }
}

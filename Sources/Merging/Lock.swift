import Foundation

/// A tiny mutex wrapper for collecting results from concurrent loops.
final class NSLockLike: @unchecked Sendable {
    private let lock = NSLock()
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive, non-blocking `flock` on a lock file, held until `release()` (or deinit). The
/// file is removed when the lock is released, while still held, so no other process holds a
/// lock on a removed file unknowingly: after locking, a taker checks that the path still names
/// the file it locked, and retries on the new file when it does not. A file left by a killed
/// holder is simply locked again (the kernel released the lock with the process).
/// Used by `OutputFolder` (one writer per output path) and by merge `--assemble`.
public final class ExclusiveFileLock {
    public enum Failure: Error, Equatable {
        /// The lock file cannot be created (the reason from the system).
        case cannotCreate(String)
        /// Another process holds the lock.
        case held
        /// The file kept being replaced while we tried to lock it.
        case unstable
    }

    public let url: URL
    private var fd: Int32

    /// Takes the lock on `url`, creating the file.
    public init(_ url: URL) throws(Failure) {
        self.url = url
        for _ in 0..<100 {
            let f = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard f >= 0 else { throw .cannotCreate(String(cString: strerror(errno))) }
            guard flock(f, LOCK_EX | LOCK_NB) == 0 else {
                close(f)
                throw .held
            }
            // The previous holder may have removed the file between our open and our lock.
            var held = stat(), named = stat()
            if fstat(f, &held) == 0, stat(url.path, &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev {
                fd = f
                return
            }
            close(f)
        }
        throw .unstable
    }

    /// Removes the file and releases the lock; idempotent.
    public func release() {
        guard fd >= 0 else { return }
        unlink(url.path)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

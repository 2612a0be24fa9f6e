import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A full disk on demand, for tests of the output discipline: no test can rely on a small
/// file system being mountable, and a process-wide file size limit would hit the other tests
/// Swift Testing runs in parallel. So the fault is keyed by folder and taken by one writer.
extension SafetensorsWriter {
    /// Per folder: the file size at which writes fail, and how many writers to pass over first.
    nonisolated(unsafe) private static var diskFullFaults: [String: (bytes: Int, skip: Int)] = [:]
    private static let diskFullLock = NSLock()

    /// Tests only: after `skippingFiles` writers, the next `SafetensorsWriter` created for a
    /// file anywhere under `directory` (resolved through symlinks) fails its write with ENOSPC
    /// ("No space left on device") once the file holds `bytes` bytes (header included), as a
    /// full disk would fail it. One writer takes the fault; writers elsewhere never see it.
    static func injectDiskFull(under directory: URL, afterBytes bytes: Int, skippingFiles: Int = 0) {
        diskFullLock.lock(); defer { diskFullLock.unlock() }
        diskFullFaults[resolvedFolder(directory.path)] = (bytes, skippingFiles)
    }

    /// Tests only: drops a fault no writer took (so it cannot leak into a later test); true
    /// when one was still pending.
    @discardableResult
    static func clearInjectedDiskFull(under directory: URL) -> Bool {
        diskFullLock.lock(); defer { diskFullLock.unlock() }
        return diskFullFaults.removeValue(forKey: resolvedFolder(directory.path)) != nil
    }

    /// The injected limit for a writer of `url`, removed as it is taken; nil when none is set
    /// (one lock and an empty-dictionary check per file written).
    static func takeInjectedDiskFull(for url: URL) -> Int? {
        diskFullLock.lock(); defer { diskFullLock.unlock() }
        guard !diskFullFaults.isEmpty else { return nil }
        let path = resolvedFolder(url.deletingLastPathComponent().path) + "/"
        guard let key = diskFullFaults.keys.filter({ path.hasPrefix($0 + "/") }).max(by: { $0.count < $1.count }),
              let fault = diskFullFaults[key] else { return nil }
        if fault.skip > 0 {
            diskFullFaults[key] = (fault.bytes, fault.skip - 1)
            return nil
        }
        diskFullFaults[key] = nil
        return fault.bytes
    }

    private static func resolvedFolder(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }
}

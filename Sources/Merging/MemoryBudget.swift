import Foundation

/// The memory a merge may use: `--memory-budget SIZE` (a limit: refuse a plan whose largest job
/// needs more), `none`, or by default a share of the memory available when the command starts
/// (`MemAvailable` of /proc/meminfo, or what the cgroup's `memory.max` leaves if that is less).
/// Under an automatic budget a plan that needs more is not refused (the estimate is an upper
/// bound and the system may free page cache); the merge drops mapped input pages block by block
/// as with a tight explicit budget, and says so.
public struct MemoryBudget: Sendable, Equatable {
    public var bytes: Int?
    public var isAutomatic: Bool
    /// How the figure was found, for `--dry-run` ("80% of 21.3 GB available").
    public var origin: String

    public init(bytes: Int?, isAutomatic: Bool, origin: String) {
        self.bytes = bytes; self.isAutomatic = isAutomatic; self.origin = origin
    }

    /// Share of the available memory an automatic budget takes.
    public static let automaticShare = 0.8

    /// `--memory-budget` as given (nil: automatic). `parseSize` reads "2GB", "512MB", ...
    public static func resolve(_ option: String?, parseSize: (String) throws -> Int) throws -> MemoryBudget {
        switch option.map({ $0.lowercased() }) {
        case nil, "auto"?:
            guard let available = availableBytes() else {
                return MemoryBudget(bytes: nil, isAutomatic: true, origin: "automatic, but the available memory is unknown: no limit")
            }
            return MemoryBudget(bytes: Int(Double(available) * automaticShare), isAutomatic: true,
                                origin: "automatic: \(Int(automaticShare * 100))% of \(formatBytes(available)) available")
        case "none"?:
            return MemoryBudget(bytes: nil, isAutomatic: false, origin: "none (--memory-budget none)")
        case _?:
            let s = option!
            let b = try parseSize(s)
            return MemoryBudget(bytes: b, isAutomatic: false, origin: "--memory-budget \(s)")
        }
    }

    /// The dry run's line.
    public var line: String {
        "memory budget: " + (bytes.map { "\(formatBytes($0)) (\(origin))" } ?? origin)
    }

    /// This process's resident set now (/proc/self/statm: code, libraries, heap, mapped pages),
    /// or nil when it cannot be read. The budget bounds the merge's work on top of it.
    public static func residentBytes() -> Int? {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let f = statm.split(separator: " ")
        guard f.count >= 2, let pages = Int(f[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// What this machine has free now, or nil when it cannot be read.
    public static func availableBytes() -> Int? {
        let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let max = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8)
        let current = try? String(contentsOfFile: "/sys/fs/cgroup/memory.current", encoding: .utf8)
        return available(meminfo: meminfo, cgroupMax: max, cgroupCurrent: current)
    }

    /// `MemAvailable` (kB) of a /proc/meminfo text, lowered to a cgroup v2 limit minus its usage
    /// when the limit is a number ("max" means none).
    public static func available(meminfo: String?, cgroupMax: String?, cgroupCurrent: String?) -> Int? {
        var result: Int?
        if let meminfo {
            for line in meminfo.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count >= 2, let kB = Int(fields[1]), kB >= 0 {
                    let unit = fields.count >= 3 ? fields[2].lowercased() : "kb"
                    result = unit == "kb" ? kB * 1024 : kB
                }
            }
        }
        if let m = cgroupMax.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            let used = cgroupCurrent.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
            let left = Swift.max(0, m - used)
            result = Swift.min(result ?? left, left)
        }
        return result
    }
}

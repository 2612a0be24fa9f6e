import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why an output path was refused or could not be committed.
public enum OutputError: Error, CustomStringConvertible, Equatable {
    /// The output (resolved through symlinks) is an input, inside one, or a parent of one.
    case overlapsInput(output: String, input: String, relation: String)
    case cacheInsideInput(cache: String, option: String, input: String)
    /// The output exists and is not empty, and `--force` was not given.
    case exists(path: String)
    /// `--force` was given but the existing path is not a previous weightsmith output.
    case notWeightsmithOutput(path: String)
    /// Another run holds the lock of this output path.
    case locked(path: String)
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case let .overlapsInput(output, input, relation):
            return "\(output): refusing to write the output \(relation) the input \(input)"
        case let .cacheInsideInput(cache, option, input):
            return "\(cache): refusing to keep the \(option) cache \(cache == input ? "in" : "inside") the input \(input) (an input is never written into); choose another folder"
        case let .exists(path):
            return "\(path): already exists and is not empty (use --force to replace a previous weightsmith output)"
        case let .notWeightsmithOutput(path):
            return "\(path): --force replaces only a previous weightsmith output (a folder with \(OutputFolder.markerName)); this one is not, refusing to touch it"
        case let .locked(path):
            return "\(path): another weightsmith run is writing this output right now (lock held); try again when it ends"
        case let .io(path, message):
            return "\(path): \(message)"
        }
    }
}

/// The one output discipline of every writer: `prepare` validates the output path before any
/// work (never an input, inside one or a parent of one, resolved through symlinks; an existing
/// non-empty output only with `force`, and then only a previous weightsmith output; a lock so two
/// runs to one path fail fast), `write` stages into a uniquely named hidden sibling
/// (`.NAME.weightsmith-PID-RANDOM`), fsyncs, and renames it into place; the staging entry is
/// removed on any error, and stale staging entries of dead processes are removed by the next run.
public final class OutputFolder: @unchecked Sendable {
    public enum Kind: Sendable { case directory, file }

    /// Written into every output folder; `--force` replaces only folders that have it.
    public static let markerName = ".weightsmith-output"

    /// The resolved final path.
    public let url: URL
    public let kind: Kind
    public let command: String
    /// Whether an existing output may be replaced (checked in `prepare`).
    public let force: Bool
    private var heldLock: ExclusiveFileLock?

    private var parent: URL { url.deletingLastPathComponent() }
    private var name: String { url.lastPathComponent }
    private var stagingPrefix: String { ".\(name).weightsmith-" }
    public var lockURL: URL { parent.appendingPathComponent(".\(name).weightsmith-lock") }

    private init(url: URL, kind: Kind, command: String, force: Bool) {
        self.url = url
        self.kind = kind
        self.command = command
        self.force = force
    }

    deinit { unlock() }

    /// Validates `output` against `inputs` and takes its lock. Call before any work.
    public static func prepare(_ output: URL, inputs: [URL], force: Bool, command: String,
                               kind: Kind = .directory) throws -> OutputFolder {
        let resolved = try checkNotOverlapping(output, inputs: inputs)
        let out = OutputFolder(url: resolved, kind: kind, command: command, force: force)
        try out.checkExisting(force: force, shownPath: output.path)
        try out.lock(shownPath: output.path)
        out.removeStaleStaging()
        return out
    }

    /// The contents of the `.weightsmith-output` marker a folder output of `command` holds (no
    /// PID or time: a re-run writes the same bytes).
    public static func markerContents(command: String) -> [UInt8] {
        Array("{\"command\": \(jsonQuoted(command))}\n".utf8)
    }

    /// The first check of `prepare` alone: `output` (resolved through symlinks; missing parent
    /// folders are created) is not an input, inside one or a parent of one. Returns the resolved
    /// path. For writers that manage an output folder shared by several processes themselves.
    @discardableResult
    public static func checkNotOverlapping(_ output: URL, inputs: [URL]) throws -> URL {
        let resolved = try resolveOutput(output)
        let outPath = resolved.path
        let resolvedInputs = inputs.compactMap { i in realPath(i.path).map { (i, $0) } }  // a missing input fails later, in its reader
        if let (input, _) = resolvedInputs.first(where: { $0.1 == outPath }) {
            throw OutputError.overlapsInput(output: output.path, input: input.path, relation: "onto")
        }
        for (input, inPath) in resolvedInputs {
            if inPath.hasPrefix(outPath.hasSuffix("/") ? outPath : outPath + "/") {
                throw OutputError.overlapsInput(output: output.path, input: input.path, relation: "as a parent folder of")
            }
            if outPath.hasPrefix(inPath.hasSuffix("/") ? inPath : inPath + "/") {
                throw OutputError.overlapsInput(output: output.path, input: input.path, relation: "inside")
            }
        }
        return resolved
    }

    /// A cache folder (`--stats-cache`, `--cache-dir`) must not be an input folder or inside one:
    /// the cache adds its own files there, and an input is never written into. `inputs` are the
    /// command's model references as given (`BASE+ADAPTER` is checked part by part); missing
    /// cache folders are resolved through their nearest existing parent, and nothing is created.
    public static func checkCacheFolder(_ cache: URL, inputs: [String], option: String) throws {
        var path = cache.standardizedFileURL.path
        var rest: [String] = []
        while realPath(path) == nil, path != "/", !path.isEmpty {
            rest.insert((path as NSString).lastPathComponent, at: 0)
            path = (path as NSString).deletingLastPathComponent
        }
        let root = realPath(path.isEmpty ? "/" : path) ?? path
        let resolved = rest.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
        let parts = inputs.flatMap { [$0] + ($0.contains("+") ? $0.split(separator: "+").map(String.init) : []) }
        for input in parts {
            var isDir: ObjCBool = false
            guard let inPath = realPath(input), FileManager.default.fileExists(atPath: inPath, isDirectory: &isDir), isDir.boolValue else { continue }
            if resolved == inPath || resolved.hasPrefix(inPath.hasSuffix("/") ? inPath : inPath + "/") {
                throw OutputError.cacheInsideInput(cache: cache.path, option: option, input: resolved == inPath ? cache.path : input)
            }
        }
    }

    /// Stages the output, runs `body` with the staging URL, then commits it atomically. For a
    /// folder the staging URL is a fresh empty folder; for a single file it is a path that does
    /// not exist yet, inside a private staging folder (so the temporary files of a writer that
    /// itself writes atomically stay inside it too). Nothing is left at the final path or in the
    /// staging entry when `body` throws; a killed process leaves only the staging entry, which the
    /// next run to this output removes. Errors thrown while staging name the final path, not the
    /// staging entry (`namingFinalPath`).
    @discardableResult
    public func write<T>(_ body: (URL) throws -> T) throws -> T {
        let staging = parent.appendingPathComponent(stagingPrefix + "\(getpid())-\(Self.randomTag())")
        guard mkdir(staging.path, 0o755) == 0 else {
            throw OutputError.io(path: staging.path, message: "cannot create the staging folder: \(String(cString: strerror(errno)))")
        }
        var committed = false
        defer { if !committed { try? FileManager.default.removeItem(at: staging) } }
        let target = kind == .directory ? staging : staging.appendingPathComponent(name)
        let result: T
        do {
            result = try body(target)
            if let e = Self.injectedFailure(for: url) { throw e }
            if kind == .directory {
                // No PID or time: a re-run writes the same bytes (outputs committed to a repository stay unchanged).
                try writeAndSync(Self.markerContents(command: command), to: staging.appendingPathComponent(Self.markerName))
                try syncTree(staging)
                try commit(staging)
            } else {
                var st = stat()
                guard lstat(target.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                    throw OutputError.io(path: url.path, message: "the writer finished without writing the file")
                }
                try syncPath(target.path)
                try commit(target)
                try? FileManager.default.removeItem(at: staging)
            }
        } catch {
            // A full disk while staging reads "OUT/model.safetensors: write failed: No space left
            // on device", not the staging name, which the deferred removal is about to delete.
            throw namingFinalPath(error, staging: staging, target: target)
        }
        committed = true
        _ = try? syncPath(parent.path)
        unlock()
        return result
    }

    // MARK: - Validation

    private static func resolveOutput(_ output: URL) throws -> URL {
        let path = output.standardizedFileURL.path
        var st = stat()
        if lstat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK {
                guard let r = realPath(path) else {
                    throw OutputError.io(path: output.path, message: "is a symbolic link to a path that does not exist (a dangling link); remove it or choose another output")
                }
                return URL(fileURLWithPath: r)
            }
        }
        let parentPath = (path as NSString).deletingLastPathComponent
        // Missing parent folders are created, as `mkdir -p` (and mergekit's output path) would.
        if !parentPath.isEmpty, realPath(parentPath) == nil {
            do {
                try FileManager.default.createDirectory(atPath: parentPath, withIntermediateDirectories: true)
            } catch {
                throw OutputError.io(path: output.path, message: "cannot create the parent folder \(parentPath): \(error.localizedDescription)")
            }
        }
        guard let p = realPath(parentPath.isEmpty ? "." : parentPath) else {
            throw OutputError.io(path: output.path, message: "the parent folder \(parentPath) does not exist")
        }
        let last = (path as NSString).lastPathComponent
        guard !last.isEmpty, last != ".", last != ".." else {
            throw OutputError.io(path: output.path, message: "is not a usable output name")
        }
        return URL(fileURLWithPath: p).appendingPathComponent(last)
    }

    private func checkExisting(force: Bool, shownPath: String) throws {
        var st = stat()
        guard stat(url.path, &st) == 0 else { return }
        let isDir = (st.st_mode & S_IFMT) == S_IFDIR
        switch kind {
        case .directory:
            guard isDir else {
                throw OutputError.io(path: shownPath, message: "exists and is not a folder; refusing to replace it")
            }
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            if contents.isEmpty { return }
            guard force else { throw OutputError.exists(path: shownPath) }
            guard contents.contains(Self.markerName) else { throw OutputError.notWeightsmithOutput(path: shownPath) }
        case .file:
            guard !isDir else {
                throw OutputError.io(path: shownPath, message: "is a folder; the output is a single file, refusing to replace it")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw OutputError.io(path: shownPath, message: "exists and is not a regular file; refusing to replace it")
            }
            guard force else { throw OutputError.exists(path: shownPath) }
        }
    }

    /// Takes the lock: an `ExclusiveFileLock` on `.NAME.weightsmith-lock`, removed when released.
    private func lock(shownPath: String) throws {
        do { heldLock = try ExclusiveFileLock(lockURL) } catch {
            switch error {
            case .cannotCreate(let reason): throw OutputError.io(path: lockURL.path, message: "cannot create the lock file: \(reason)")
            case .held, .unstable: throw OutputError.locked(path: shownPath)
            }
        }
    }

    /// Releases the lock and removes its file.
    private func unlock() {
        heldLock?.release()
        heldLock = nil
    }

    /// Removes `.NAME.weightsmith-PID-...` entries whose process no longer runs.
    private func removeStaleStaging() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent.path) else { return }
        for e in entries where e.hasPrefix(stagingPrefix) {
            let rest = e.dropFirst(stagingPrefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
            if pid == getpid() { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            try? FileManager.default.removeItem(at: parent.appendingPathComponent(e))
        }
    }

    // MARK: - Commit

    private func commit(_ staging: URL) throws {
        var st = stat()
        let exists = lstat(url.path, &st) == 0
        if kind == .file && !force {
            // link(2) fails on an existing name: a file that appeared since `prepare` is never replaced.
            if link(staging.path, url.path) == 0 {
                unlink(staging.path)
                return
            }
            let e = errno
            if e == EEXIST { throw OutputError.exists(path: url.path) }
            // A file system without hard links: re-check, then rename.
            guard e == EPERM || e == ENOTSUP || e == EOPNOTSUPP, lstat(url.path, &st) != 0 else {
                throw OutputError.io(path: url.path, message: "cannot move the staged output into place: \(String(cString: strerror(e)))")
            }
        }
        if kind == .file || !exists {
            // A file replaces the old one atomically; a folder takes a free (or empty) name atomically.
            if rename(staging.path, url.path) == 0 { return }
            if !(kind == .directory && (errno == ENOTEMPTY || errno == EEXIST)) {
                throw OutputError.io(path: url.path, message: "cannot rename the staged output into place: \(String(cString: strerror(errno)))")
            }
        }
        // An existing folder (checked in `prepare`: empty, or a previous output with --force):
        // re-check it, set it aside, move the new one in, then drop the old one.
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        if !contents.isEmpty && !contents.contains(Self.markerName) { throw OutputError.notWeightsmithOutput(path: url.path) }
        let old = parent.appendingPathComponent(stagingPrefix + "\(getpid())-\(Self.randomTag())-old")
        guard rename(url.path, old.path) == 0 else {
            throw OutputError.io(path: url.path, message: "cannot move the previous output aside: \(String(cString: strerror(errno)))")
        }
        guard rename(staging.path, url.path) == 0 else {
            let err = String(cString: strerror(errno))
            _ = rename(old.path, url.path)
            throw OutputError.io(path: url.path, message: "cannot rename the staged output into place: \(err)")
        }
        try? FileManager.default.removeItem(at: old)
    }

    // MARK: - Fault injection (tests)

    nonisolated(unsafe) private static var failures: [String: any Error] = [:]
    private static let failuresLock = NSLock()

    /// Tests only: the next `write` to `output` (resolved) throws `error` after its body has
    /// filled the staging entry, before the commit. Keyed by path, so tests running in parallel
    /// do not see each other's faults.
    static func injectFailure(forOutput output: URL, _ error: any Error) {
        let key = (realPath(output.deletingLastPathComponent().path) ?? output.deletingLastPathComponent().path) + "/" + output.lastPathComponent
        failuresLock.lock(); defer { failuresLock.unlock() }
        failures[key] = error
    }

    private static func injectedFailure(for url: URL) -> (any Error)? {
        failuresLock.lock(); defer { failuresLock.unlock() }
        return failures.removeValue(forKey: url.path)
    }

    // MARK: - Helpers

    static func randomTag() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    private func writeAndSync(_ bytes: [UInt8], to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError.io(path: url.path, message: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count, fsync(fd) == 0 else {
            throw OutputError.io(path: url.path, message: "cannot write: \(String(cString: strerror(errno)))")
        }
    }

    private func syncTree(_ dir: URL) throws {
        let fm = FileManager.default
        if let e = fm.enumerator(atPath: dir.path) {
            while let rel = e.nextObject() as? String {
                try syncPath(dir.appendingPathComponent(rel).path)
            }
        }
        try syncPath(dir.path)
    }

    private func syncPath(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        let mode = st.st_mode & S_IFMT
        guard mode == S_IFREG || mode == S_IFDIR else { return }
        let fd = open(path, (mode == S_IFDIR ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { throw OutputError.io(path: path, message: "cannot open to sync: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw OutputError.io(path: path, message: "fsync failed: \(String(cString: strerror(errno)))") }
    }
}

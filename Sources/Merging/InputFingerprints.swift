import Foundation

/// SHA-256 of input files for the model card, without re-hashing what is already known:
/// a file in the Hugging Face cache is a symlink to `blobs/<sha256>` (the name is the hash),
/// and digests computed here are remembered in `~/.cache/weightsmith/sha256.json`, keyed by
/// (absolute path, size, modification time), so merging the same inputs again costs nothing.
public enum InputFingerprints {
    public static var cacheURL: URL {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("weightsmith/sha256.json")
    }

    /// Hex digests of `paths` (unreadable files are reported as "unreadable").
    public static func digests(_ paths: [String], useCache: Bool = true) -> [String: String] {
        var cache: [String: String] = useCache ? load() : [:]
        var out: [String: String] = [:]
        var changed = false
        var todo: [(path: String, key: String)] = []
        for p in paths where out[p] == nil {
            if let h = huggingFaceBlobDigest(p) { out[p] = h; continue }
            guard let key = cacheKey(p) else { out[p] = "unreadable"; continue }
            if let h = cache[key] { out[p] = h; continue }
            if !todo.contains(where: { $0.path == p }) { todo.append((p, key)) }
        }
        // Files not seen before are hashed side by side (hashing is CPU-bound; one file per core).
        final class Results: @unchecked Sendable {
            let lock = NSLockLike()
            var hashes: [String]
            init(_ n: Int) { hashes = [String](repeating: "unreadable", count: n) }
        }
        let results = Results(todo.count)
        let files = todo.map(\.path)
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            guard let h = try? SHA256.hexDigest(ofFile: files[i]) else { return }
            results.lock.locked { results.hashes[i] = h }
        }
        let hashes = results.hashes
        for (i, t) in todo.enumerated() {
            out[t.path] = hashes[i]
            if hashes[i] != "unreadable" { cache[t.key] = hashes[i]; changed = true }
        }
        if useCache && changed { save(cache) }
        return out
    }

    /// `path` → `.../blobs/<64 hex>`: the Hugging Face cache names LFS blobs by their SHA-256.
    static func huggingFaceBlobDigest(_ path: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { return nil }
        let name = URL(fileURLWithPath: target).lastPathComponent
        let parent = URL(fileURLWithPath: target).deletingLastPathComponent().lastPathComponent
        guard parent == "blobs", name.count == 64, name.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return name
    }

    static func cacheKey(_ path: String) -> String? {
        let abs = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        guard let a = try? FileManager.default.attributesOfItem(atPath: abs),
              let size = a[.size] as? NSNumber, let m = a[.modificationDate] as? Date else { return nil }
        return "\(abs)|\(size.int64Value)|\(Int64((m.timeIntervalSince1970 * 1e6).rounded()))"
    }

    static func load() -> [String: String] {
        guard let data = FileManager.default.contents(atPath: cacheURL.path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: String] else { return [:] }
        return obj
    }

    static func save(_ cache: [String: String]) {
        guard let data = try? JSONSerialization.data(withJSONObject: cache, options: [.sortedKeys]) else { return }
        try? FileManager.default.createDirectory(at: cacheURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.write(to: cacheURL, options: .atomic)  // a cache: failing to write it only costs time later
    }
}

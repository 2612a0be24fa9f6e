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
        for p in paths {
            if let h = huggingFaceBlobDigest(p) { out[p] = h; continue }
            guard let key = cacheKey(p) else { out[p] = "unreadable"; continue }
            if let h = cache[key] { out[p] = h; continue }
            let h = (try? SHA256.hexDigest(ofFile: p)) ?? "unreadable"
            out[p] = h
            if h != "unreadable" { cache[key] = h; changed = true }
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

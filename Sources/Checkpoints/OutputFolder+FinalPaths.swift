import Foundation

/// Errors thrown while an output is staged name the final path, not the hidden staging entry:
/// "OUT/model.safetensors: write failed: No space left on device" says which output failed, and
/// the staging name (`.OUT.weightsmith-PID-RANDOM`) is gone by the time the user reads it.
extension OutputFolder {
    /// `error` with every path inside `staging` shown as the final path it stands for: for a
    /// folder output `staging/x` becomes `OUT/x`; for a single file the staged file (and any
    /// temporary file of its writer) becomes `OUT`. Paths elsewhere, and errors of other types
    /// (they do not know the staging entry), are left as they are.
    func namingFinalPath(_ error: any Error, staging: URL, target: URL) -> any Error {
        let s = staging.path
        let final = url.path
        let isFile = kind == .file
        func path(_ p: String) -> String {
            guard p == s || p.hasPrefix(s + "/") else { return p }
            return isFile ? final : final + p.dropFirst(s.count)
        }
        func text(_ m: String) -> String {
            guard m.contains(s) else { return m }
            return m.replacingOccurrences(of: target.path, with: final)
                .replacingOccurrences(of: s, with: isFile ? url.deletingLastPathComponent().path : final)
        }
        switch error {
        case let e as CheckpointError: return e.mappingPaths(path, text)
        case let e as OutputError: return e.mappingPaths(path, text)
        default: return error
        }
    }
}

extension CheckpointError {
    /// The error with `path` applied to the paths of the cases a writer throws and `text` to
    /// their free-text messages; reader errors (about inputs) are returned unchanged.
    func mappingPaths(_ path: (String) -> String, _ text: (String) -> String) -> CheckpointError {
        switch self {
        case let .io(p, m): return .io(path: path(p), message: text(m))
        case let .conversion(p, t, e): return .conversion(path: path(p), tensor: t, underlying: e)
        case let .writeOutOfOrder(p, e, g): return .writeOutOfOrder(path: path(p), expected: e, got: g)
        case let .writeShapeMismatch(p, t, e, a): return .writeShapeMismatch(path: path(p), tensor: t, expected: e, actual: a)
        case let .writeIncomplete(p, m): return .writeIncomplete(path: path(p), missing: m)
        case let .invalidWriterEntry(p, r): return .invalidWriterEntry(path: path(p), reason: text(r))
        case let .byteSizeMismatch(p, t, e, a): return .byteSizeMismatch(path: path(p), tensor: t, expected: e, actual: a)
        case let .nonFinite(p, t, c, n, i): return .nonFinite(path: path(p), tensor: t, count: c, elements: n, input: i)
        default: return self
        }
    }
}

extension OutputError {
    func mappingPaths(_ path: (String) -> String, _ text: (String) -> String) -> OutputError {
        switch self {
        case let .io(p, m): return .io(path: path(p), message: text(m))
        case let .exists(p): return .exists(path: path(p))
        case let .notWeightsmithOutput(p): return .notWeightsmithOutput(path: path(p))
        case let .locked(p): return .locked(path: path(p))
        case .overlapsInput, .cacheInsideInput: return self
        }
    }
}

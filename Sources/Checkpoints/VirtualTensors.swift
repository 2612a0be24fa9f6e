import Foundation
import Tensors

// MARK: - Virtual tensors

/// Tensors a `Checkpoint` computes on request.
protocol VirtualTensorSource: AnyObject, Sendable {
    var infos: [String: TensorInfo] { get }
    var sourceURLs: [URL] { get }
    func label(of name: String) -> String
    func tensor(_ name: String) throws -> Tensor
    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    func release(_ name: String)
}

/// Tensors either passed through from another checkpoint (bytes and dtype unchanged) or
/// computed as Float32; a computed tensor is kept from its first `withRawBytes` until
/// `release` (the merge executor reads it chunk by chunk, then releases it).
final class ComputedTensors: VirtualTensorSource, @unchecked Sendable {
    enum Entry {
        case passthrough(Checkpoint, String)
        case computed(label: String, () throws -> Tensor)
    }
    let infos: [String: TensorInfo]
    let sourceURLs: [URL]
    private let entries: [String: Entry]
    private var cache: [String: Tensor] = [:]
    private let lock = NSLock()

    init(entries: [String: (TensorInfo, Entry)], sourceURLs: [URL]) {
        self.infos = entries.mapValues { $0.0 }
        self.entries = entries.mapValues { $0.1 }
        self.sourceURLs = sourceURLs
    }

    static func f32Info(_ name: String, _ shape: Shape) -> TensorInfo {
        TensorInfo(name: name, dtype: .f32, shape: shape, dataOffsets: 0..<(shape.elementCount * 4))
    }

    func label(of name: String) -> String {
        switch entries[name] {
        case let .passthrough(c, n)?: return c.fileLabel(of: n) ?? c.path
        case let .computed(label, _)?: return label
        case nil: return "?"
        }
    }

    private func computed(_ name: String, keep: Bool) throws -> Tensor {
        guard case let .computed(_, make)? = entries[name] else { throw CheckpointError.tensorNotFound(path: "virtual", name: name) }
        if let t = lock.withLock({ cache[name] }) { return t }
        let t = try make()
        guard t.shape == infos[name]!.shape else {
            throw CheckpointError.invalidShape(path: label(of: name), tensor: name, reason: "computed \(t.shape), expected \(infos[name]!.shape)")
        }
        if keep { lock.withLock { cache[name] = t } }
        return t
    }

    func tensor(_ name: String) throws -> Tensor {
        switch entries[name] {
        case let .passthrough(c, n)?: return try c.tensor(n)
        default: return try computed(name, keep: false)
        }
    }

    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch entries[name] {
        case let .passthrough(c, n)?: return try c.withRawBytes(n, body)
        default:
            let t = try computed(name, keep: true)
            return try t.scalars.withUnsafeBytes(body)
        }
    }

    func release(_ name: String) {
        switch entries[name] {
        case let .passthrough(c, n)?: c.releasePages(n)
        default: _ = lock.withLock { cache.removeValue(forKey: name) }
        }
    }
}

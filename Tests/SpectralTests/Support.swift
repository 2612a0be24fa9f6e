import Foundation
import Checkpoints
import Tensors

enum Paths {
    /// Repository root (for fixtures/demo, shared with the README demo and the notebook).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let demo = root.appendingPathComponent("fixtures/demo")
    static var fixtures: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }
}

/// A fresh folder under the temporary directory, removed when the test process exits.
func tempDir(_ tag: String) -> URL {
    let u = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ws-spectral-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    TemporaryFolders.shared.add(u)
    return u
}

/// The folders `tempDir` made, removed at exit (the tests leave their outputs to look at while
/// they run, not in /tmp afterwards).
final class TemporaryFolders: @unchecked Sendable {
    static let shared: TemporaryFolders = {
        let t = TemporaryFolders()
        atexit { TemporaryFolders.shared.removeAll() }
        return t
    }()
    private let lock = NSLock()
    private var urls: [URL] = []

    func add(_ url: URL) { lock.lock(); urls.append(url); lock.unlock() }

    func removeAll() {
        lock.lock(); let all = urls; urls = []; lock.unlock()
        for u in all { try? FileManager.default.removeItem(at: u) }
    }
}

/// Writes a safetensors file of F32 tensors.
func writeSafetensors(_ url: URL, _ tensors: [(String, Tensor)], allowNonFinite: Bool = false) throws {
    let w = try SafetensorsWriter(url: url, entries: tensors.map { TensorEntry(name: $0.0, dtype: .f32, shape: $0.1.shape) }, allowNonFinite: allowNonFinite)
    for (n, t) in tensors { try w.write(n, t) }
    try w.finish()
}

func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

func random(_ m: Int, _ n: Int, seed: UInt64, std: Float = 1) -> Tensor {
    var r = SeededRandom(seed: seed)
    return r.normalTensor(rows: m, cols: n, std: std)
}

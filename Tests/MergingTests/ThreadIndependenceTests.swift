import XCTest
@testable import Merging
import Tensors

/// Results must not depend on how many threads compute them (`--threads 1` and `--threads 2`
/// give the same bytes). Before reductions were chunked by a fixed size, `ParallelLoops.sums`
/// split its range by `threadCount * 4`, so SLERP, Karcher and model stock changed with it.
/// The thread count is passed to each loop (no process setting), so one process can run the
/// counts side by side.
final class ThreadIndependenceTests: XCTestCase {

    private func random(_ count: Int, seed: UInt64, scale: Double = 1) -> [Float] {
        var r = SeededRandom(seed: seed)
        // A wide spread of magnitudes, so that a different summation order changes low bits.
        return (0..<count).map { _ in Float((r.nextUniform() * 2 - 1) * scale * pow(10, r.nextUniform() * 4 - 2)) }
    }

    func testSumsAreBitIdenticalAcrossThreadCounts() {
        let n = 5 * ParallelLoops.sumChunkSize + 12_345
        let x = random(n, seed: 7)
        func total(_ threads: Int) -> [Double] {
            x.withUnsafeBufferPointer { p in
                ParallelLoops(threads: threads).sums(n, 2) { range, acc in
                    for i in range { acc[0] += Double(p[i]); acc[1] += Double(p[i]) * Double(p[i]) }
                }
            }
        }
        let one = total(1)
        // The fixed-chunk order, written out serially.
        var reference = [0.0, 0.0]
        var lo = 0
        while lo < n {
            let hi = min(n, lo + ParallelLoops.sumChunkSize)
            var a = 0.0, b = 0.0
            for i in lo..<hi { a += Double(x[i]); b += Double(x[i]) * Double(x[i]) }
            reference[0] += a; reference[1] += b
            lo = hi
        }
        XCTAssertEqual(one.map(\.bitPattern), reference.map(\.bitPattern))
        for t in [2, 3, 8] {
            XCTAssertEqual(total(t).map(\.bitPattern), one.map(\.bitPattern), "threads \(t)")
        }
    }

    /// Every registered method (defaults plus the parameters each needs), on tensors large enough
    /// to be split into several chunks and blocks: 1, 2 and 3 threads give identical bits.
    func testEveryMethodIsBitIdenticalAcrossThreadCounts() throws {
        let rows = 700, cols = 301  // 210,700 elements: several reduction chunks
        let shape = Shape([rows, cols])
        let base = Tensor(shape: shape, scalars: random(rows * cols, seed: 1))
        let models = (2..<5).map { s in
            Tensor(shape: shape, scalars: zip(base.scalars, random(rows * cols, seed: UInt64(s), scale: 0.05)).map { $0 + $1 })
        }
        for method in MergeMethodRegistry.all {
            var global: [String: ParameterValue] = [:]
            var perModel: [String: ParameterValue] = [:]
            for spec in method.parameters where spec.defaultValue == nil || spec.name == "density" {
                let value: ParameterValue = spec.kind == .bool ? .bool(true)
                    : .number(spec.name == "density" ? 0.4 : spec.name == "t" ? 0.3 : 0.7)
                if spec.scope == .global { global[spec.name] = value } else { perModel[spec.name] = value }
            }
            let ms: [Tensor]
            switch method.modelCount.upperBound {
            case 1: ms = [models[0]]
            default: ms = Array(models.prefix(max(method.modelCount.lowerBound, min(3, method.modelCount.upperBound))))
            }
            let b: Tensor? = method.baseRole == .plainInput ? nil : base
            let params = ResolvedParameters(global: global, perModel: ms.map { _ in perModel })
            let merged: (Int) throws -> Tensor = { t in
                try method.merge(base: b, models: ms, parameters: params, seed: 42, tensorName: "model.layers.0.mlp.up_proj.weight", threads: t)
            }
            let one: Tensor
            do { one = try merged(1) } catch {
                // A method whose required parameters this generic set does not provide is skipped
                // by name, so that a new method is not silently left out: the list must stay short.
                XCTAssertTrue(["passthrough"].contains(method.name), "\(method.name): \(error)")
                continue
            }
            for t in [2, 3] {
                let other = try merged(t)
                XCTAssertEqual(other.scalars.map(\.bitPattern), one.scalars.map(\.bitPattern), "\(method.name) with \(t) threads")
            }
        }
    }
}

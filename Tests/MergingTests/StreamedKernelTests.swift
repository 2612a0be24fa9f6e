import Checkpoints
import CMergeKernels
import Foundation
import XCTest
@testable import Merging
import Tensors

/// The streamed task-arithmetic kernel (`TaskArithmeticStream`, used by the executor and by
/// `merge`) against the in-memory reference (`referenceMerge` + `Sparsifier`), bit for bit.
final class StreamedKernelTests: XCTestCase {
    enum Values { case quantised, continuous, mostlyZero, special }

    /// Base and models whose task vectors take few distinct magnitudes (`quantised`: δ = k/8,
    /// |k| ≤ 20, exact in Float32, so every threshold falls among hundreds of ties), continuous
    /// values, or deltas that are mostly exactly zero.
    func inputs(rows: Int, cols: Int, models: Int, _ kind: Values, seed: UInt64) -> (base: [Float], models: [[Float]]) {
        var r = SeededRandom(seed: seed)
        let n = rows * cols
        let base: [Float] = (0..<n).map { _ in Float(Int(r.nextUniform() * 2048) - 1024) / 1024 }
        let ms: [[Float]] = (0..<models).map { _ in
            (0..<n).map { j in
                switch kind {
                case .quantised: return base[j] + Float(Int(r.nextUniform() * 41) - 20) / 8
                case .continuous: return base[j] + Float(r.nextNormal() * 0.01)
                case .mostlyZero: return r.nextUniform() < 0.7 ? base[j] : base[j] + Float(Int(r.nextUniform() * 9) - 4) / 8
                case .special:
                    // Quantised deltas with NaN, ±infinity, -0 and subnormal deltas sprinkled in.
                    let u = r.nextUniform()
                    if u < 0.002 { return .nan }
                    if u < 0.004 { return u < 0.003 ? .infinity : -.infinity }
                    if u < 0.01 { return base[j] + Float(bitPattern: UInt32(r.nextUniform() * 64) | (u < 0.007 ? 0x8000_0000 : 0)) }
                    return base[j] + Float(Int(r.nextUniform() * 41) - 20) / 8
                }
            }
        }
        return (base, ms)
    }

    func params(_ perModel: [[String: ParameterValue]], _ global: [String: ParameterValue] = [:]) -> ResolvedParameters {
        ResolvedParameters(global: global, perModel: perModel)
    }

    /// Runs both paths with a small block size (many blocks, windows and tie ordinals across blocks).
    func assertSame(_ method: String, _ p: ResolvedParameters, rows: Int = 210, cols: Int = 70, _ kind: Values, seed: UInt64 = 3,
                    blockTarget: Int = 1000, candidateLimit: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let family = try XCTUnwrap(MergeMethodRegistry.method(named: method) as? TaskArithmeticFamily)
        let full = family.withDefaults(p, modelCount: p.perModel.count)
        let (base, models) = inputs(rows: rows, cols: cols, models: p.perModel.count, kind, seed: seed)
        let shape: Shape = [rows, cols]
        var streamed = [Float](repeating: .nan, count: rows * cols)
        var reference = [Float](repeating: .nan, count: rows * cols)
        try base.withUnsafeBufferPointer { b in
            try withBuffers(models.map { Tensor(shape: shape, scalars: $0) }) { xs in
                let inp = MergeInputs(tensorName: "t", shape: shape, base: b, models: xs)
                try streamed.withUnsafeMutableBufferPointer { o in
                    try family.stream(full, tensorName: "t", shape: shape, seed: 9, blockTarget: blockTarget, candidateLimit: candidateLimit)
                        .run(BufferBlockSource(inputs: inp), into: BufferOutput(o))
                }
                try reference.withUnsafeMutableBufferPointer { o in
                    try family.referenceMerge(inp, full, seed: 9, into: o, blockTarget: blockTarget)
                }
            }
        }
        // Bit for bit, except that any NaN matches any NaN (payloads differ between operations).
        let differ = zip(streamed, reference).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
        XCTAssertEqual(differ, 0, "\(method) \(kind): \(differ) of \(streamed.count) elements differ", file: file, line: line)
        // The merge changed something (the test is not vacuous).
        XCTAssertNotEqual(streamed, base, file: file, line: line)
    }

    let three: [[String: ParameterValue]] = [["weight": .number(1), "density": .number(0.5)],
                                             ["weight": .number(0.7), "density": .number(0.3)],
                                             ["weight": .number(-0.4), "density": .number(0.8)]]

    func testTiesMatchesReferenceWithTiesAtThresholds() throws {
        for kind in [Values.quantised, .continuous, .mostlyZero] {
            try assertSame("ties", params(three), kind)
            try assertSame("ties", params(three, ["rescale": .bool(true)]), kind)
            try assertSame("ties", params(three, ["normalize": .bool(false), "lambda": .number(0.6)]), kind)
        }
        // Densities 0 and 1 (unpruned) beside a pruned model; one model.
        try assertSame("ties", params([["weight": .number(1), "density": .number(0)], ["weight": .number(1), "density": .number(1)],
                                       ["weight": .number(2), "density": .number(0.25)]]), .quantised)
        try assertSame("ties", params([["weight": .number(1), "density": .number(0.123)]], ["rescale": .bool(true)]), .quantised)
    }

    func testBreadcrumbsMatchesReference() throws {
        var p = three
        p[0]["gamma"] = .number(0.05)
        p[1]["gamma"] = .number(0.2)
        p[2]["gamma"] = .number(0.001)
        for kind in [Values.quantised, .continuous, .mostlyZero] {
            try assertSame("breadcrumbs", params(p), kind)
            try assertSame("breadcrumbs_ties", params(p, ["rescale": .bool(true)]), kind)
        }
        // Both bounds in the same tie group (a narrow kept range).
        try assertSame("breadcrumbs", params([["weight": .number(1), "density": .number(0.01), "gamma": .number(0.3)]]), .quantised)
    }

    func testDareMatchesReferenceMask() throws {
        for kind in [Values.quantised, .continuous] {
            try assertSame("dare_ties", params(three), kind)
            try assertSame("dare_linear", params(three), kind)
            try assertSame("dare_ties", params(three, ["rescale": .bool(false)]), kind)
        }
    }

    func testDellaMatchesReference() throws {
        var p = three
        p[2]["density"] = .number(0.6)
        for kind in [Values.quantised, .continuous] {
            try assertSame("della", params(p, ["rescale": .bool(true)]), kind)
            try assertSame("della_linear", params(p), kind)
        }
    }

    func testTaskArithmeticMatchesReference() throws {
        try assertSame("task_arithmetic", params(three.map { ["weight": $0["weight"]!] }, ["lambda": .number(0.5)]), .continuous)
        try assertSame("task_arithmetic", params(three.map { ["weight": $0["weight"]!] }, ["normalize": .bool(true)]), .quantised)
    }

    /// Pass 2 keeps the low bits of each bound's bin up to a limit (then histograms the rest and
    /// counts ties in pass 3), and the C kernels have an AVX2 and a scalar path: every
    /// combination gives the reference's bits, also with NaN, infinite, -0 and subnormal deltas,
    /// for the sign election and both weighted sums.
    func testBinLimitsAndScalarKernelsGiveTheSameBits() throws {
        defer { ws_merge_force_scalar(0) }
        var p = three
        p[1]["gamma"] = .number(0.1)
        for scalar in [false, true] {
            ws_merge_force_scalar(scalar ? 1 : 0)
            for limit in [nil, 0, 40] as [Int?] {
                for kind in [Values.quantised, .continuous, .mostlyZero, .special] {
                    try assertSame("ties", params(three), kind, candidateLimit: limit)
                    try assertSame("ties", params(three, ["rescale": .bool(true), "normalize": .bool(false)]), kind, candidateLimit: limit)
                    try assertSame("breadcrumbs_ties", params(p), kind, candidateLimit: limit)
                    try assertSame("localize_stitch", params(three), kind, candidateLimit: limit)
                }
                try assertSame("dare_ties", params(three), .special, candidateLimit: limit)
                try assertSame("dare_ties", params(three, ["rescale": .bool(false)]), .continuous, candidateLimit: limit)
                try assertSame("dare_linear", params(three), .special, candidateLimit: limit)
                try assertSame("della_linear", params(three), .special, candidateLimit: limit)
                try assertSame("task_arithmetic", params(three.map { ["weight": $0["weight"]!] }, ["lambda": .number(0.5)]), .special)
                try assertSame("breadcrumbs", params([["weight": .number(1), "density": .number(0.01), "gamma": .number(0.3)]]), .quantised,
                               candidateLimit: limit)
            }
        }
    }

    /// The C kernels' counter hash is `MergeRandom.bits32`, also where the index wraps at 2^32.
    func testCounterHashMatchesMergeRandom() {
        let r = MergeRandom(seed: 42, tensor: "model.layers.0.mlp.up_proj.weight", model: 1)
        for index in [0, 1, 7, 12345, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 5] {
            XCTAssertEqual(ws_merge_bits32(r.k0, r.k1, UInt32(truncatingIfNeeded: index)), r.bits32(index), "index \(index)")
        }
        // Known value, so that a change of the hash (and of every DARE mask) is noticed.
        XCTAssertEqual(ws_merge_bits32(0, 0, 1), 0x58F5_4975)
    }

    /// `ws_merge_bin_scan` against a plain loop, both paths, with lengths that leave tails.
    func testBinScanFindsEveryElementOfTheBin() {
        defer { ws_merge_force_scalar(0) }
        var r = SeededRandom(seed: 5)
        for n in [0, 7, 8, 9, 1001] {
            let b: [Float] = (0..<n).map { _ in Float(r.nextNormal()) }
            let x: [Float] = b.enumerated().map { j, v in j % 97 == 0 ? .nan : v + Float(Int(r.nextUniform() * 9) - 4) / 16 }
            for high: UInt32 in [0x3D80, 0x3E00, 0x3E80, 0x7FC0, 0] {
                let expected = zip(x, b).map { ($0 - $1).magnitude.bitPattern }.filter { $0 >> 16 == high }.map { UInt16($0 & 0xFFFF) }
                for scalar in [0, 1] as [Int32] {
                    ws_merge_force_scalar(scalar)
                    var low = [UInt16](repeating: 0, count: max(1, n))
                    let c = ws_merge_bin_scan(x, b, n, high, &low)
                    XCTAssertEqual(Array(low[0..<c]), expected, "n \(n) high \(high) scalar \(scalar)")
                }
            }
        }
    }

    func testDefaultBlocksAndSmallTensors() throws {
        // One block (the default target), a rank-1 tensor, and a tensor smaller than one row block.
        try assertSame("ties", params(three), rows: 300, cols: 400, .quantised, blockTarget: TensorBlocks.defaultTarget)
        try assertSame("dare_ties", params(three), rows: 1, cols: 577, .continuous, blockTarget: TensorBlocks.defaultTarget)
        try assertSame("della", params([["weight": .number(1), "density": .number(0.5)]]), rows: 40, cols: 1, .continuous)
    }

    /// The executor streams large jobs block by block (dropping mapped pages, decoding BF16 per
    /// block) and writes the output piecewise: same numbers as the reference on whole tensors.
    func testExecutorStreamsLargeJobsExactly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-stream-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = 3000, cols = 1000
        let (base, models) = inputs(rows: rows, cols: cols, models: 3, .quantised, seed: 11)
        var paths: [String] = []
        for (k, values) in ([base] + models).enumerated() {
            let d = dir.appendingPathComponent("m\(k)")
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            // One BF16 input: decoded block by block.
            let dtype: DType = k == 2 ? .bf16 : .f32
            let w = try SafetensorsWriter(url: d.appendingPathComponent("model.safetensors"),
                                          entries: [TensorEntry(name: "w", dtype: dtype, shape: [rows, cols])])
            try w.write("w", Tensor(shape: [rows, cols], scalars: values))
            try w.finish()
            paths.append(d.path)
        }
        var yaml = "merge_method: ties\nbase_model: \(paths[0])\nmodels:\n"
        for (k, p) in paths.dropFirst().enumerated() {
            yaml += "  - model: \(p)\n    parameters: {weight: \(1 + k), density: \(0.3 + 0.2 * Double(k))}\n"
        }
        yaml += "parameters: {rescale: true}\n"
        var plan = try MergePlanner.plan(try RecipeParser.parse(yaml))
        XCTAssertEqual(MergeExecutor.mode(of: plan.jobs[0], plan: plan), .streamed)
        // 48 MB of inputs stay mapped by default; lowered, every block's pages are dropped after
        // each pass (the path a large embedding or a tight --memory-budget takes).
        let kept = plan.estimatedPeakBytes
        plan.keepMappedBytes = 32 << 20
        XCTAssertGreaterThan(MergeExecutor.inputBytes(plan.jobs[0], plan: plan), plan.keepMappedBytes)
        XCTAssertLessThan(plan.estimatedPeakBytes, kept - 30_000_000)
        let out = dir.appendingPathComponent("out")
        _ = try MergeExecutor.run(plan, to: out, options: ExecutionOptions(hashInputs: false, progress: false))
        let merged = try Checkpoint(path: out.path).tensor("w")

        let inputs = try paths.map { try Checkpoint(path: $0).tensor("w") }
        let family = try XCTUnwrap(plan.method as? TaskArithmeticFamily)
        var reference = [Float](repeating: .nan, count: rows * cols)
        try inputs[0].scalars.withUnsafeBufferPointer { b in
            try withBuffers(Array(inputs.dropFirst())) { xs in
                try reference.withUnsafeMutableBufferPointer { o in
                    try family.referenceMerge(MergeInputs(tensorName: "w", shape: [rows, cols], base: b, models: xs),
                                              plan.jobs[0].parameters, seed: plan.seed, into: o)
                }
            }
        }
        XCTAssertEqual(zip(merged.scalars, reference).filter { $0.bitPattern != $1.bitPattern }.count, 0)
    }

    func testPiecewiseWriterChecksCounts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-pieces-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try SafetensorsWriter(url: dir.appendingPathComponent("a.safetensors"),
                                      entries: [TensorEntry(name: "x", dtype: .bf16, shape: [2, 3]), TensorEntry(name: "y", dtype: .f32, shape: [1])])
        try w.beginPieces("x")
        try [1, 2, 3, 4].withUnsafeBufferPointer { try w.appendPiece($0) }
        XCTAssertThrowsError(try [Float](repeating: 0, count: 3).withUnsafeBufferPointer { try w.appendPiece($0) })
        XCTAssertThrowsError(try w.endPieces())
        XCTAssertThrowsError(try w.write("y", Tensor(shape: [1], scalars: [1])))
        try [5, 6].withUnsafeBufferPointer { try w.appendPiece($0) }
        try w.endPieces()
        try w.write("y", Tensor(shape: [1], scalars: [7]))
        try w.finish()
        let c = try Checkpoint(path: dir.appendingPathComponent("a.safetensors").path)
        XCTAssertEqual(try c.tensor("x").scalars, [1, 2, 3, 4, 5, 6])
    }
}

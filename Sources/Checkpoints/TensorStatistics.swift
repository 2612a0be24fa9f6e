import Tensors

/// Summary statistics of one tensor, computed by streaming its stored bytes in chunks.
///
/// `min`, `max`, `mean` and `std` (population, divide by n) are over the finite values only;
/// NaN and ±Inf are counted apart. Mean and variance are accumulated in Float64 per chunk and
/// combined with Chan et al.'s pairwise update, so they stay accurate for billions of elements.
/// All are nil when no value is finite.
public struct TensorStatistics: Sendable, Equatable {
    public var count: Int
    public var finiteCount: Int
    public var nanCount: Int
    public var infCount: Int
    public var min: Double?
    public var max: Double?
    public var mean: Double?
    public var std: Double?

    /// Elements per chunk: 256 KiB of Float32 scratch, whatever the tensor size.
    static let chunk = 65_536

    /// Statistics of `count` elements of `dtype` in `raw` (little-endian, as stored).
    /// - Throws: `TensorError.unsupportedConversion` for dtypes without a Float32 image (FP8, C64).
    public static func compute(_ raw: UnsafeRawBufferPointer, dtype: DType, count: Int, context: String = "tensor") throws -> TensorStatistics {
        var s = TensorStatistics(count: count, finiteCount: 0, nanCount: 0, infCount: 0)
        var n = 0.0, mean = 0.0, m2 = 0.0
        var lo = Float.infinity, hi = -Float.infinity
        var scratch = [Float](repeating: 0, count: Swift.min(chunk, Swift.max(count, 1)))
        var start = 0
        while start < count {
            let len = Swift.min(chunk, count - start)
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(start * dtype.byteSize)..<((start + len) * dtype.byteSize)])
            try scratch.withUnsafeMutableBufferPointer { buf in
                let part = UnsafeMutableBufferPointer(rebasing: buf[0..<len])
                try DTypeConversion.decode(bytes, dtype: dtype, into: part, context: context)
                // Pass 1: range, special values and the chunk sum over finite values.
                let c = chunkSums(UnsafeBufferPointer(part))
                s.nanCount += c.nan
                s.infCount += c.inf
                lo = Swift.min(lo, c.lo)
                hi = Swift.max(hi, c.hi)
                let sum = c.sum, k = c.finite
                guard k > 0 else { return }
                // Pass 2 (chunk in cache): centred sum of squares.
                let cm = sum / Double(k)
                let cm2 = centredSquares(UnsafeBufferPointer(part), mean: cm, allFinite: k == len)
                let kd = Double(k), total = n + kd, delta = cm - mean
                mean += delta * kd / total
                m2 += cm2 + delta * delta * n * kd / total
                n = total
            }
            start += len
        }
        s.finiteCount = Int(n)
        if n > 0 {
            s.min = Double(lo)
            s.max = Double(hi)
            s.mean = mean
            s.std = (m2 / n).squareRoot()
        }
        return s
    }

    /// Finite count, Float64 sum, range and NaN/Inf counts of one chunk. Chunks without NaN/Inf
    /// (the usual case, found by a branch-free scan of the exponent bits) take a loop with four
    /// independent accumulators, which the CPU overlaps; others take the per-element loop.
    @inline(__always)
    static func chunkSums(_ p: UnsafeBufferPointer<Float>) -> (finite: Int, sum: Double, lo: Float, hi: Float, nan: Int, inf: Int) {
        let n = p.count
        var special = 0
        p.withMemoryRebound(to: UInt32.self) { bits in
            for b in bits { special &+= (b & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
        }
        var lo = Float.infinity, hi = -Float.infinity
        if special == 0 {
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
            var i = 0
            while i + 4 <= n {
                let a = p[i], b = p[i + 1], c = p[i + 2], d = p[i + 3]
                s0 += Double(a); s1 += Double(b); s2 += Double(c); s3 += Double(d)
                lo = Swift.min(lo, Swift.min(Swift.min(a, b), Swift.min(c, d)))
                hi = Swift.max(hi, Swift.max(Swift.max(a, b), Swift.max(c, d)))
                i += 4
            }
            while i < n {
                s0 += Double(p[i]); lo = Swift.min(lo, p[i]); hi = Swift.max(hi, p[i])
                i += 1
            }
            return (n, (s0 + s1) + (s2 + s3), lo, hi, 0, 0)
        }
        var sum = 0.0, k = 0, nan = 0, inf = 0
        for x in p {
            if x.isFinite {
                sum += Double(x)
                k += 1
                if x < lo { lo = x }
                if x > hi { hi = x }
            } else if x.isNaN {
                nan += 1
            } else {
                inf += 1
            }
        }
        return (k, sum, lo, hi, nan, inf)
    }

    /// Sum of (x - mean)^2 over the finite values of a chunk, in Float64.
    @inline(__always)
    static func centredSquares(_ p: UnsafeBufferPointer<Float>, mean: Double, allFinite: Bool) -> Double {
        guard allFinite else {
            var m2 = 0.0
            for x in p where x.isFinite {
                let d = Double(x) - mean
                m2 += d * d
            }
            return m2
        }
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        let n = p.count
        while i + 4 <= n {
            let d0 = Double(p[i]) - mean, d1 = Double(p[i + 1]) - mean, d2 = Double(p[i + 2]) - mean, d3 = Double(p[i + 3]) - mean
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3
            i += 4
        }
        while i < n {
            let d = Double(p[i]) - mean
            a0 += d * d
            i += 1
        }
        return (a0 + a1) + (a2 + a3)
    }

    /// Two-pass Float64 reference over a whole array (for tests).
    public static func reference(_ values: [Float]) -> TensorStatistics {
        let finite = values.filter(\.isFinite).map(Double.init)
        var s = TensorStatistics(count: values.count, finiteCount: finite.count,
                                 nanCount: values.filter(\.isNaN).count,
                                 infCount: values.filter(\.isInfinite).count)
        if !finite.isEmpty {
            let mean = finite.reduce(0, +) / Double(finite.count)
            s.min = finite.min()
            s.max = finite.max()
            s.mean = mean
            s.std = (finite.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(finite.count)).squareRoot()
        }
        return s
    }
}

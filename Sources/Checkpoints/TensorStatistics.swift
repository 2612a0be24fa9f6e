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
                var sum = 0.0, k = 0
                for x in part {
                    if x.isFinite {
                        sum += Double(x)
                        k += 1
                        if x < lo { lo = x }
                        if x > hi { hi = x }
                    } else if x.isNaN {
                        s.nanCount += 1
                    } else {
                        s.infCount += 1
                    }
                }
                guard k > 0 else { return }
                // Pass 2 (chunk in cache): centred sum of squares.
                let cm = sum / Double(k)
                var cm2 = 0.0
                for x in part where x.isFinite {
                    let d = Double(x) - cm
                    cm2 += d * d
                }
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

// weightsmith-bench: timing harness for the numeric kernels (release builds only).
//
//   weightsmith-bench svd [--sizes 512,1024,2048] [--repeats 3]
//     times float32 thin SVD with vectors (sgesdd, jobz S) of seeded Gaussian square matrices;
//     prints one JSON object per size: {"kernel":"svd","n":..,"best_s":..,"median_s":..}.
//   weightsmith-bench svd-shapes [--shapes 576x576,192x576,1536x576,576x1536] [--k 10] [--repeats 3]
//     per row-major shape, best-of time of: gesdd with vectors, gesdd values only, the selective
//     truncatedSVD (top-k left vectors; and top-k + all values), one JSON object per shape.
import Foundation
import Tensors

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func option(_ name: String, _ args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let args = Array(CommandLine.arguments.dropFirst())
guard let kernel = args.first else {
    FileHandle.standardError.write("usage: weightsmith-bench svd [--sizes 512,1024,2048] [--repeats 3]\n".data(using: .utf8)!)
    exit(2)
}
switch kernel {
case "svd":
    let sizes = (option("--sizes", args) ?? "512,1024,2048").split(separator: ",").compactMap { Int($0) }
    let repeats = Int(option("--repeats", args) ?? "3") ?? 3
    for n in sizes {
        var rng = SeededRandom(seed: UInt64(n))
        let a = rng.normalTensor(rows: n, cols: n)
        _ = try svd(Tensor(shape: [64, 64], scalars: Array(a.scalars[0..<4096])))   // warm-up (thread pool, code pages)
        var times = [Double]()
        var check: Float = 0
        for _ in 0..<repeats {
            let t0 = now()
            let r = try svd(a)
            times.append(now() - t0)
            check = r.s[0]
        }
        times.sort()
        print("{\"kernel\":\"svd\",\"impl\":\"weightsmith sgesdd\",\"n\":\(n),\"best_s\":\(times[0]),\"median_s\":\(times[times.count / 2]),\"sigma1\":\(check)}")
    }
case "svd-shapes":
    let shapes = (option("--shapes", args) ?? "576x576,192x576,1536x576,576x1536").split(separator: ",").map { $0.split(separator: "x").compactMap { Int($0) } }
    let k = Int(option("--k", args) ?? "10") ?? 10
    let repeats = Int(option("--repeats", args) ?? "3") ?? 3
    for sh in shapes where sh.count == 2 {
        var rng = SeededRandom(seed: UInt64(sh[0] * 7 + sh[1]))
        let a = rng.normalTensor(rows: sh[0], cols: sh[1])
        func best(_ f: () throws -> Void) rethrows -> Double {
            var b = Double.infinity
            for _ in 0..<repeats { let t0 = now(); try f(); b = min(b, now() - t0) }
            return b
        }
        let full = try best { _ = try svd(a) }
        let at = a.transposed()
        let fullT = try best { _ = try svd(at) }
        let values = try best { _ = try singularValues(a) }
        let topK = try best { _ = try truncatedSVD(a, rank: k, rightVectors: false) }
        let topKAll = try best { _ = try truncatedSVD(a, rank: k, allValues: true, rightVectors: false) }
        print("{\"kernel\":\"svd-shapes\",\"shape\":\"\(sh[0])x\(sh[1])\",\"k\":\(k),\"gesdd_vectors_s\":\(full),\"gesdd_vectors_of_transpose_s\":\(fullT),\"gesdd_values_s\":\(values),\"selective_topk_s\":\(topK),\"selective_topk_all_values_s\":\(topKAll)}")
    }
default:
    FileHandle.standardError.write("unknown kernel \(kernel)\n".data(using: .utf8)!)
    exit(2)
}

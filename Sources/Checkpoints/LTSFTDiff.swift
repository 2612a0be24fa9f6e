import Foundation
import Tensors

/// LT-SFT's `pytorch_diff.bin` (Ansell et al. 2022; the composable-sft package's `SFT.save`):
/// a `torch.save` ZIP archive of `{'diffs': {name: {'size', 'index_steps', 'values'}}, 'abs':
/// {name: tensor}}` (older files: `'body'` and `'head'`). An encoded tensor's linear indices are
/// first-dimension-fastest (idx = Σ_d coord_d · Π_{e<d} size_e), ascending and delta-coded
/// (`index_steps[0]` is the first index). Read here through `RestrictedPickle` (no pickled code
/// runs) into row-major sparse-delta tensors; the cumulative sum runs in Int64 with overflow
/// checks (the reference decoder's int32 overflows above 2³¹ entries). `abs` tensors (a trained
/// head, applied by replacement, not addition) have no place in a sparse delta: they are listed in
/// `absNames` and read only on request.
public struct LTSFTDiff {
    public let path: String
    public let diffs: [SparseDeltaTensor]
    /// Names of the dense `abs` tensors (not converted).
    public let absNames: [String]

    /// Converts a Python-side file to a sparse delta without this reader (needs torch, numpy and
    /// safetensors; only for files you trust, since torch.load executes pickled code).
    public static let pythonOneLiner = #"python3 -c "import sys,json,torch,numpy as np;from safetensors.numpy import save_file;D=torch.load(sys.argv[1],weights_only=False)['diffs'];E={n:(list(e['size']),np.cumsum(np.array(e['index_steps'],dtype=np.int64)),e['values'].float().numpy()) for n,e in D.items()};P={n:np.ravel_multi_index(np.unravel_index(E[n][1],E[n][0],order='F'),E[n][0]) for n in E};O={n:np.argsort(P[n]) for n in E};save_file({**{n+'.idx':P[n][O[n]] for n in E},**{n+'.val':E[n][2][O[n]] for n in E}},sys.argv[2],metadata={'format':'weightsmith-sparse-delta','version':'1','index_order':'row-major','shapes':json.dumps({n:E[n][0] for n in E})})" pytorch_diff.bin sft.safetensors"#

    public enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        case invalid(path: String, reason: String)
        var reason: String { switch self { case let .invalid(_, r): return r } }
        public var description: String {
            switch self {
            case let .invalid(p, r):
                return "\(p): not a readable LT-SFT pytorch_diff.bin: \(r)\n(if the file is one you trust, convert it in Python instead: \(LTSFTDiff.pythonOneLiner))"
            }
        }
    }

    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path: path)
        (diffs, absNames) = try withExtendedLifetime(mapped) { try Self.read(mapped.bytes(0..<mapped.size), path: path) }
    }

    /// The row-major linear indices of LT-SFT's delta-coded, first-dimension-fastest `steps` for a
    /// tensor of shape `dims`, in the order given: a cumulative sum in Int64 with overflow checks,
    /// each index in range, strictly ascending (the first step ≥ 0, the others > 0).
    public static func rowMajorIndices(steps: [Int64], dims: [Int]) throws -> [Int64] {
        guard let total = Shape(dims).checkedElementCount else { throw Failure.invalid(path: "", reason: "size \(dims) overflows") }
        var rowStrides = [Int64](repeating: 1, count: dims.count)
        for d in stride(from: dims.count - 2, through: 0, by: -1) { rowStrides[d] = rowStrides[d + 1] * Int64(dims[d + 1]) }
        var out: [Int64] = []
        out.reserveCapacity(steps.count)
        var idx: Int64 = 0
        for (p, step) in steps.enumerated() {
            guard p == 0 ? step >= 0 : step > 0 else {
                throw Failure.invalid(path: "", reason: "index step \(p) is \(step) (indices must be strictly ascending)")
            }
            let (next, overflow) = idx.addingReportingOverflow(step)
            guard !overflow, next < Int64(total) else {
                throw Failure.invalid(path: "", reason: "index \(overflow ? "overflows Int64" : "\(next)") at position \(p), outside 0..<\(total)")
            }
            idx = next
            // coord_d = (idx / Π_{e<d} size_e) mod size_d; row-major index = Σ coord_d · Π_{e>d} size_e.
            var rest = idx, r: Int64 = 0
            for d in 0..<dims.count {
                let n = Int64(dims[d])
                r += (rest % n) * rowStrides[d]
                rest /= n
            }
            out.append(r)
        }
        return out
    }

    static func read(_ bytes: UnsafeRawBufferPointer, path: String) throws -> ([SparseDeltaTensor], [String]) {
        func bad(_ r: String) -> Failure { .invalid(path: path, reason: r) }
        let zip: StoredZip
        do { zip = try StoredZip(path: path, bytes: bytes) } catch let e as StoredZip.Failure { throw bad(e.description) }
        guard let pkl = zip.entries.first(where: { $0.name.hasSuffix("/data.pkl") && !$0.name.dropLast(9).contains("/") }) else {
            throw bad("no <archive>/data.pkl member (a torch.save file from torch ≥ 1.6 is a ZIP archive)")
        }
        let prefix = String(pkl.name.dropLast(8))
        if let order = zip.entry(prefix + "byteorder") {
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order.offset..<(order.offset + order.size)]), as: UTF8.self)
            guard s == "little" else { throw bad("byteorder \"\(s)\" (only little-endian is read)") }
        }
        let root: PickleValue
        do {
            root = try RestrictedPickle.load(UnsafeRawBufferPointer(rebasing: bytes[pkl.offset..<(pkl.offset + pkl.size)]), path: path)
        } catch let e as RestrictedPickle.Failure { throw bad(e.description) }
        guard case let .dict(top) = root else { throw bad("the top-level object is a \(root.kind), not a dict") }
        guard let diffsValue = top["diffs"] ?? top["body"], case let .dict(diffs) = diffsValue else {
            throw bad("no 'diffs' (or 'body') dict of encoded tensors")
        }
        var absNames: [String] = []
        if let a = top["abs"] ?? top["head"] {
            guard case let .dict(abs) = a else { throw bad("'abs' is a \(a.kind), not a dict") }
            for (k, _) in abs.items { guard case let .string(n) = k else { throw bad("'abs' has a key that is not a string") }; absNames.append(n) }
        }

        /// The values of a 1-D contiguous tensor, decoded to Float32 with its storage dtype.
        func values(_ v: PickleValue, name: String) throws -> (DType, [Float]) {
            guard case let .tensor(type, key, storageCount, offset, size, stride) = v else { throw bad("\"\(name)\": 'values' is a \(v.kind), not a tensor") }
            let dtypes: [String: DType] = ["FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64]
            guard let dt = dtypes[type] else { throw bad("\"\(name)\": values stored as \(type) (floating point only)") }
            guard size.count == 1, stride == [1] || size == [0] || size == [1] else { throw bad("\"\(name)\": 'values' must be a contiguous 1-D tensor, found size \(size) stride \(stride)") }
            let n = size[0]
            guard offset + n <= storageCount else { throw bad("\"\(name)\": values \(offset)..<\(offset + n) outside a storage of \(storageCount)") }
            guard let member = zip.entry(prefix + "data/" + key) else { throw bad("\"\(name)\": storage member data/\(key) is missing") }
            guard member.size == storageCount * dt.byteSize else {
                throw bad("\"\(name)\": storage data/\(key) holds \(member.size) bytes, expected \(storageCount) × \(dt.byteSize)")
            }
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(member.offset + offset * dt.byteSize)..<(member.offset + (offset + n) * dt.byteSize)])
            do { return (dt, try DTypeConversion.decode(raw, dtype: dt, count: n, context: name)) } catch { throw bad("\"\(name)\": \(error)") }
        }

        var out: [SparseDeltaTensor] = []
        var seen = Set<String>()
        for (k, v) in diffs.items {
            guard case let .string(name) = k else { throw bad("'diffs' has a key that is not a string") }
            guard seen.insert(name).inserted else { throw bad("\"\(name)\" is encoded twice") }
            guard !absNames.contains(name) else { throw bad("\"\(name)\" is both a diff and an abs tensor") }
            guard case let .dict(enc) = v, let sizeV = enc["size"], let stepsV = enc["index_steps"], let valuesV = enc["values"] else {
                throw bad("\"\(name)\": an encoding needs 'size', 'index_steps' and 'values'")
            }
            let dims: [Int]
            switch sizeV {
            case let .size(d): dims = d
            case let .tuple(t): dims = try t.map { guard case let .int(i) = $0, i >= 0 else { throw bad("\"\(name)\": bad size") }; return Int(i) }
            default: throw bad("\"\(name)\": 'size' is a \(sizeV.kind)")
            }
            let shape = Shape(dims)
            guard shape.checkedElementCount != nil else { throw bad("\"\(name)\": size \(dims) overflows") }
            let stepValues: [PickleValue]
            switch stepsV {
            case let .list(l): stepValues = l.items
            case let .tuple(t): stepValues = t
            default: throw bad("\"\(name)\": 'index_steps' is a \(stepsV.kind), not a list of ints")
            }
            let (dtype, vals) = try values(valuesV, name: name)
            guard vals.count == stepValues.count else { throw bad("\"\(name)\": \(stepValues.count) index steps but \(vals.count) values") }
            var steps: [Int64] = []
            steps.reserveCapacity(stepValues.count)
            for (p, v) in stepValues.enumerated() {
                guard case let .int(step) = v else { throw bad("\"\(name)\": index step \(p) is a \(v.kind)") }
                steps.append(step)
            }
            let rowMajor: [Int64]
            do { rowMajor = try rowMajorIndices(steps: steps, dims: dims) } catch let e as Failure { throw bad("\"\(name)\": \(e.reason)") }
            var pairs = Array(Swift.zip(rowMajor, vals))
            pairs.sort { $0.0 < $1.0 }
            out.append(SparseDeltaTensor(name: name, shape: shape, dtype: dtype, indices: pairs.map(\.0), values: pairs.map(\.1)))
        }
        return (out, absNames)
    }
}

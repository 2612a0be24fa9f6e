import Foundation
import XCTest
@testable import Checkpoints
import Tensors

/// Files our writer produces load in the official Python `safetensors` package with equal values.
///
/// Runs `python3 -c` (numpy + safetensors; torch is used too when importable). Skips, saying so,
/// only when python3 or those packages are missing (CI installs them: `pip install safetensors numpy`).
final class PythonLoadsOurFilesTests: XCTestCase {
    /// Values that exercise rounding ties, subnormals, overflow on narrowing and the special values.
    static let floatValues: [Float] = {
        var v: [Float] = [0, -0.0, 1, -2.5, 3.140625, 1e-3, 65504, 65520, 70000, 6.1e-5, 5.96e-8, 1e-40, 1e-45,
                          .infinity, -.infinity, .nan, 1.0 / 3.0, -1234.5678, 3.0e38, .greatestFiniteMagnitude,
                          Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
                          Float(bitPattern: 0x7F7F_8000), Float(bitPattern: 0x3F80_1000), Float(bitPattern: 0x3F80_3000)]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while v.count < 64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            v.append(Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1000)
        }
        return v
    }()

    static let script = #"""
import json, sys
import numpy as np
from safetensors import deserialize, safe_open
from safetensors.numpy import load_file
try:
    import torch
except ImportError:
    torch = None

def narrow_bf16(x32):
    # Independent of our bias trick: pick the nearer of the two bf16 neighbours in float64, ties to even.
    x32 = np.asarray(x32, dtype=np.float32)
    bits = x32.view(np.uint32).astype(np.uint64)
    lo = bits & 0xFFFF0000
    hi = lo + 0x10000
    def val(b):
        b = b.astype(np.uint32)
        v = b.view(np.float32).astype(np.float64)
        # The bf16 step past the largest finite value stands for 2^128 when measuring distance.
        over = (b & 0x7FFFFFFF) == 0x7F800000
        return np.where(over, np.sign(v) * 2.0 ** 128, v)
    x = x32.astype(np.float64)
    np.seterr(invalid="ignore")
    dlo, dhi = np.abs(x - val(lo)), np.abs(val(hi) - x)
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (((lo >> 16) & 1) == 1))
    out = np.where(pick_hi, hi, lo) >> 16
    out = np.where(np.isinf(x32), bits >> 16, out)
    return out.astype(np.uint16)

def fail(msg):
    print("MISMATCH:", msg)
    sys.exit(1)

expect = json.load(open(sys.argv[1]))
root = sys.argv[2]
checked = 0
numpy_loaded = 0
for rel, spec in expect["files"].items():
    path = root + "/" + rel
    data = open(path, "rb").read()
    views = dict(deserialize(data))      # the Rust validator of the official package
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    if meta != spec["metadata"]:
        fail(f"{rel}: metadata {meta} != {spec['metadata']}")
    if set(views) != set(spec["tensors"]):
        fail(f"{rel}: names {sorted(views)} != {sorted(spec['tensors'])}")
    numpy_ok = {k for k, v in spec["tensors"].items() if v["dtype"] not in ("BF16", "F8_E4M3", "F8_E5M2")}
    with safe_open(path, framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in numpy_ok}
    if numpy_ok == set(spec["tensors"]):
        arrays = load_file(path)
    numpy_loaded += len(arrays)
    for name, t in spec["tensors"].items():
        v = views[name]
        if v["dtype"].upper() != t["dtype"] and str(v["dtype"]).upper() != t["dtype"].upper():
            fail(f"{rel}:{name}: dtype {v['dtype']} != {t['dtype']}")
        if list(v["shape"]) != t["shape"]:
            fail(f"{rel}:{name}: shape {v['shape']} != {t['shape']}")
        raw = bytes(v["data"])
        if "raw_hex" in t:
            if raw.hex() != t["raw_hex"]:
                fail(f"{rel}:{name}: bytes differ")
        else:
            src = np.array(t["source_f32_bits"], dtype=np.uint32).view(np.float32)
            d = t["dtype"]
            if d == "F32":
                want = src.tobytes()
            elif d == "F64":
                want = src.astype(np.float64).tobytes()
            elif d == "F16":
                with np.errstate(over="ignore"):
                    want = src.astype(np.float16).tobytes()
            elif d == "BF16":
                want = narrow_bf16(src).tobytes()
                if torch is not None:
                    tw = torch.from_numpy(src.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
                    if not np.array_equal(tw[~np.isnan(src)], narrow_bf16(src)[~np.isnan(src)]):
                        fail(f"{rel}:{name}: reference bf16 rounding disagrees with torch")
            else:
                fail(f"{rel}:{name}: unexpected dtype {d}")
            # NaN payloads may differ: compare NaN-ness, bits elsewhere.
            npd = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": np.uint16}[d]
            got_a, want_a = np.frombuffer(raw, dtype=npd), np.frombuffer(want, dtype=npd)
            if d == "BF16":
                got_nan = (got_a & 0x7F80 == 0x7F80) & (got_a & 0x7F != 0)
                want_nan = np.isnan(src)
            else:
                got_nan, want_nan = np.isnan(got_a), np.isnan(want_a)
            if not np.array_equal(got_nan, want_nan):
                fail(f"{rel}:{name}: NaN positions differ")
            keep = ~want_nan
            if got_a[keep].tobytes() != want_a[keep].tobytes():
                bad = np.nonzero(got_a[keep] != want_a[keep])[0][:5]
                fail(f"{rel}:{name}: values differ at {bad.tolist()}")
        if name in arrays:
            a = arrays[name]
            if list(a.shape) != t["shape"] or a.tobytes() != raw:
                fail(f"{rel}:{name}: safetensors.numpy load disagrees")
        checked += 1
for idx in expect.get("indexes", []):
    j = json.load(open(root + "/" + idx["path"]))
    wm = j["weight_map"]
    if sorted(wm) != sorted(idx["tensors"]):
        fail(f"{idx['path']}: weight_map names differ")
    total = 0
    for name, shard in wm.items():
        with safe_open(root + "/" + idx["dir"] + "/" + shard, framework="numpy") as f:
            if name not in f.keys():
                fail(f"{idx['path']}: {name} not in {shard}")
        total += len(bytes(dict(deserialize(open(root + "/" + idx["dir"] + "/" + shard, "rb").read()))[name]["data"]))
    if j["metadata"]["total_size"] != total:
        fail(f"{idx['path']}: total_size {j['metadata']['total_size']} != {total}")
print("OK", checked, "tensors,", numpy_loaded, "through safetensors.numpy", "(torch too)" if torch is not None else "(numpy only)")
"""#

    /// Runs python3 with `arguments`; nil when python3 cannot be started.
    func runPython(_ arguments: [String]) -> (status: Int32, output: String)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func requirePython() throws {
        guard let r = runPython(["-c", "import safetensors, numpy"]), r.status == 0 else {
            throw XCTSkip("python3 with the `safetensors` and `numpy` packages is not importable; "
                + "install them (pip install safetensors numpy) to check that Python loads our files")
        }
    }

    func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { Fixtures.hex($0) } }

    func testPythonLoadsEveryDtypeMetadataAndShards() throws {
        try requirePython()
        let dir = try makeTemporaryDirectory()
        let values = Self.floatValues
        var files: [String: Any] = [:]

        // One file: the four float dtypes encoded by us, every other dtype as raw bytes.
        var entries: [TensorEntry] = []
        var spec: [String: Any] = [:]
        for d in [DType.f32, .f16, .bf16, .f64] {
            let name = "float.\(d.rawValue.lowercased())"
            entries.append(TensorEntry(name: name, dtype: d, shape: [8, 8]))
            spec[name] = ["dtype": d.rawValue, "shape": [8, 8], "source_f32_bits": values.map { Int($0.bitPattern) }]
        }
        entries.append(TensorEntry(name: "scalar", dtype: .bf16, shape: []))
        spec["scalar"] = ["dtype": "BF16", "shape": [Int](), "source_f32_bits": [Int(Float(0.1).bitPattern)]]
        entries.append(TensorEntry(name: "empty", dtype: .f16, shape: [0, 4]))
        spec["empty"] = ["dtype": "F16", "shape": [0, 4], "source_f32_bits": [Int]()]
        var raws: [String: [UInt8]] = [:]
        for d in [DType.i64, .i32, .i16, .i8, .u8, .bool, .u16, .u32, .u64, .f8e4m3, .f8e5m2, .c64] {
            let name = "raw.\(d.rawValue.lowercased())"
            let count = 6
            var bytes = (0..<(count * d.byteSize)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            if d == .bool { bytes = bytes.map { $0 & 1 } }
            raws[name] = bytes
            entries.append(TensorEntry(name: name, dtype: d, shape: [2, 3]))
            spec[name] = ["dtype": d.rawValue, "shape": [2, 3], "raw_hex": hex(bytes)]
        }
        let metadata = ["format": "pt", "note": "written by weightsmith \"tests\"\n\u{00e9}\u{2713}", "empty": ""]
        // The special values include NaN and ±Inf on purpose (their encodings are what is checked).
        let w = try SafetensorsWriter(url: dir.appendingPathComponent("single.safetensors"), entries: entries, metadata: metadata,
                                      allowNonFinite: true)
        for e in entries {
            if let bytes = raws[e.name] {
                try bytes.withUnsafeBytes { try w.write(e.name, rawBytes: $0) }
            } else if e.name == "scalar" {
                try w.write(e.name, Tensor(shape: [], scalars: [0.1]))
            } else if e.name == "empty" {
                try w.write(e.name, Tensor(zeros: [0, 4]))
            } else {
                try w.write(e.name, Tensor(shape: [8, 8], scalars: values))
            }
        }
        try w.finish()
        files["single.safetensors"] = ["metadata": metadata, "tensors": spec]

        // A sharded folder: 5 BF16 tensors of 128 bytes with 300-byte shards -> 3 shards + index.
        let shardDir = dir.appendingPathComponent("sharded")
        try FileManager.default.createDirectory(at: shardDir, withIntermediateDirectories: true)
        let names = ["model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.up_proj.weight",
                     "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]
        let shardEntries = names.map { TensorEntry(name: $0, dtype: .bf16, shape: [8, 8]) }
        let cw = try CheckpointWriter(directory: shardDir, entries: shardEntries, maxShardBytes: 300, metadata: ["format": "pt"],
                                      allowNonFinite: true)
        for (i, e) in shardEntries.enumerated() {
            try cw.write(e.name, Tensor(shape: [8, 8], scalars: values.map { $0 * Float(i + 1) }))
        }
        try cw.finish()
        XCTAssertEqual(cw.shardFileNames.count, 3)
        for file in cw.shardFileNames {
            var t: [String: Any] = [:]
            for (i, e) in shardEntries.enumerated() where cw.shardOf[e.name] == file {
                t[e.name] = ["dtype": "BF16", "shape": [8, 8], "source_f32_bits": values.map { Int(($0 * Float(i + 1)).bitPattern) }]
            }
            files["sharded/" + file] = ["metadata": ["format": "pt"], "tensors": t]
        }
        let expect: [String: Any] = [
            "files": files,
            "indexes": [["path": "sharded/model.safetensors.index.json", "dir": "sharded", "tensors": names]],
        ]
        let expectURL = dir.appendingPathComponent("expect.json")
        try JSONSerialization.data(withJSONObject: expect).write(to: expectURL)

        let r = try XCTUnwrap(runPython(["-c", Self.script, expectURL.path, dir.path]))
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.hasPrefix("OK \(entries.count + names.count) tensors, 14 through safetensors.numpy"), r.output)
    }
}

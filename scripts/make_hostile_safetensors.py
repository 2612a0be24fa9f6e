#!/usr/bin/env python3
"""Writes the hostile safetensors corpus: one malformed file (or folder) per failure class.

Output: Tests/CheckpointsTests/Fixtures/hostile/ and hostile/manifest.json, a list of
{"path", "error", "message", "why"}: opening `path` with `Checkpoint(path:)` must throw the
CheckpointError case named `error` whose description contains `message`.

Run from the repository root:  python3 scripts/make_hostile_safetensors.py   (standard library only)
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "CheckpointsTests", "Fixtures", "hostile")
manifest = []


def header_bytes(header):
    if isinstance(header, (bytes, bytearray)):
        return bytes(header)
    if isinstance(header, str):
        return header.encode("utf-8")
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


def safetensors_bytes(header, data=b"", length=None, pad=True):
    h = header_bytes(header)
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def record(path, error, message, why):
    manifest.append({"path": path, "error": error, "message": message, "why": why})


def write(name, content, error, message, why):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(content)
    record(name, error, message, why)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def valid_file(tensors):
    """A valid file from {name: (dtype, shape, bytes)} laid out in order."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = entry(dtype, shape, (len(data), len(data) + len(raw)))
        data += raw
    return safetensors_bytes(header, data)


F32x2 = struct.pack("<2f", 1.0, 2.0)


def single_files():
    write("empty.safetensors", b"", "fileTooSmall", "0 bytes", "an empty file")
    write("seven_bytes.safetensors", b"\x08\x00\x00\x00\x00\x00\x00", "fileTooSmall", "7 bytes",
          "shorter than the 8-byte length prefix")
    write("header_beyond_file.safetensors", safetensors_bytes({}, length=4096), "headerBeyondFile", "truncated",
          "header length points past the end of the file")
    write("header_over_cap.safetensors", struct.pack("<Q", 100_000_001) + b"{}      ", "headerTooLarge", "100000000",
          "header length above the format's 100 MB cap")
    write("header_huge_u64.safetensors", struct.pack("<Q", 2**64 - 1) + b"{}      ", "headerTooLarge",
          "18446744073709551615", "header length 2^64-1 (overflows any signed size)")
    write("header_not_utf8.safetensors", safetensors_bytes(b'{"a\xff\xfe":{}}'), "headerNotUTF8", "UTF-8",
          "invalid UTF-8 bytes in the header")
    write("header_overlong_utf8.safetensors", safetensors_bytes(b'{"\xc0\xaf":{}}'), "headerNotUTF8", "UTF-8",
          "overlong UTF-8 encoding of '/'")
    write("header_not_json.safetensors", safetensors_bytes("hello world"), "invalidJSON", "not valid JSON",
          "header is not JSON")
    write("header_truncated_json.safetensors", safetensors_bytes('{"a":{"dtype":"F32"'), "invalidJSON",
          "not valid JSON", "JSON cut in the middle")
    write("header_json_array.safetensors", safetensors_bytes("[1,2,3]"), "headerNotObject", "JSON object",
          "header is a JSON array")
    write("header_json_string.safetensors", safetensors_bytes('"weights"'), "headerNotObject", "JSON object",
          "header is a JSON string")
    write("header_trailing_garbage.safetensors", safetensors_bytes('{}{"x":1}'), "invalidJSON", "trailing",
          "a second JSON value after the object")
    write("header_nul_padding.safetensors", safetensors_bytes(b"{}\x00\x00\x00\x00\x00\x00", pad=False),
          "invalidJSON", "trailing", "header padded with NUL bytes instead of spaces")
    write("header_single_quotes.safetensors", safetensors_bytes("{'a': 1}"), "invalidJSON", "not valid JSON",
          "JSON with single quotes")
    write("deep_nesting.safetensors",
          safetensors_bytes('{"__metadata__":' + "[" * 100_000 + "]" * 100_000 + "}"),
          "invalidJSON", "nested deeper", "100000 nested arrays (stack exhaustion attempt)")
    write("lone_surrogate.safetensors", safetensors_bytes('{"\\ud800":' + json.dumps(entry()) + "}", F32x2),
          "invalidJSON", "surrogate", "an unpaired UTF-16 surrogate escape in a name")
    write("bad_escape.safetensors", safetensors_bytes('{"a\\x41":' + json.dumps(entry()) + "}", F32x2),
          "invalidJSON", "escape", "an invalid backslash escape")
    write("control_char_in_name.safetensors", safetensors_bytes('{"a\nb":' + json.dumps(entry()) + "}", F32x2),
          "invalidJSON", "control character", "a raw newline inside a JSON string")
    write("integer_too_big.safetensors",
          safetensors_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}}', F32x2),
          "invalidJSON", "64 bits", "an offset that does not fit in 64 bits")
    write("duplicate_names.safetensors",
          safetensors_bytes('{"w":' + json.dumps(entry(offsets=(0, 8))) + ',"w":' + json.dumps(entry(offsets=(8, 16))) + "}",
                            F32x2 * 2),
          "duplicateTensorName", '"w"', "the same tensor name twice")
    write("duplicate_metadata.safetensors",
          safetensors_bytes('{"__metadata__":{},"__metadata__":{},"a":' + json.dumps(entry()) + "}", F32x2),
          "duplicateTensorName", "__metadata__", "__metadata__ twice")
    write("unknown_dtype.safetensors", safetensors_bytes({"a": entry(dtype="F128")}, F32x2), "unknownDType", "F128",
          "dtype that safetensors does not define")
    write("lowercase_dtype.safetensors", safetensors_bytes({"a": entry(dtype="f32")}, F32x2), "unknownDType", '"f32"',
          "dtype names are upper case")
    write("subbyte_dtype_f4.safetensors", safetensors_bytes({"a": entry(dtype="F4", shape=(16,))}, F32x2),
          "unknownDType", "F4", "a sub-byte dtype weightsmith cannot represent")
    write("dtype_not_string.safetensors", safetensors_bytes({"a": {"dtype": 32, "shape": [2], "data_offsets": [0, 8]}}, F32x2),
          "invalidEntry", "dtype", "dtype given as a number")
    write("entry_not_object.safetensors", safetensors_bytes({"a": [0, 8]}, F32x2), "invalidEntry", "object",
          "a tensor entry that is an array")
    write("negative_dim.safetensors", safetensors_bytes({"a": entry(shape=(-2,))}, F32x2), "invalidShape", "negative",
          "a negative dimension")
    write("float_dim.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, F32x2),
          "invalidShape", "integers", "a dimension written as 2.0")
    write("string_dim.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, F32x2),
          "invalidShape", "integers", "a dimension written as a string")
    write("shape_not_array.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, F32x2),
          "invalidShape", "array", "shape given as a number")
    write("overflowing_shape.safetensors",
          safetensors_bytes({"a": entry(shape=(2**32, 2**32, 4), offsets=(0, 8))}, F32x2),
          "invalidShape", "overflows", "element count overflows 64 bits")
    write("overflowing_bytes.safetensors",
          safetensors_bytes({"a": entry(dtype="F64", shape=(2**61,), offsets=(0, 8))}, F32x2),
          "invalidShape", "overflows", "element count fits but count x 8 bytes overflows")
    write("shape_dtype_mismatch.safetensors", safetensors_bytes({"a": entry(shape=(3,), offsets=(0, 8))}, F32x2),
          "byteSizeMismatch", "need 12 bytes", "shape x dtype size differs from the byte range")
    write("offsets_reversed.safetensors", safetensors_bytes({"a": entry(offsets=(8, 0))}, F32x2), "invalidEntry",
          "increasing", "end offset before begin")
    write("offsets_negative.safetensors", safetensors_bytes({"a": entry(offsets=(-8, 0))}, F32x2), "invalidEntry",
          "increasing", "a negative begin offset")
    write("offsets_beyond_data.safetensors", safetensors_bytes({"a": entry(offsets=(8, 16))}, F32x2),
          "offsetsOutOfBounds", "beyond the data section", "byte range past the end of the file")
    write("offsets_three.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}}, F32x2),
          "invalidEntry", "two integers", "data_offsets with three numbers")
    write("offsets_strings.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, F32x2),
          "invalidEntry", "two integers", "data_offsets as strings")
    write("overlap.safetensors",
          safetensors_bytes({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, F32x2 + F32x2[:4]),
          "overlappingTensors", "overlap", "two byte ranges that overlap")
    write("aliased.safetensors",
          safetensors_bytes({"a": entry(offsets=(0, 8)), "b": entry(offsets=(0, 8))}, F32x2),
          "overlappingTensors", "overlap", "two tensors sharing one byte range")
    write("gap.safetensors",
          safetensors_bytes({"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}, F32x2 + b"\0" * 4 + F32x2),
          "gapBeforeTensor", "unused bytes 8..<12", "unused bytes between two tensors")
    write("gap_at_start.safetensors", safetensors_bytes({"a": entry(offsets=(8, 16))}, F32x2 * 2), "gapBeforeTensor",
          "unused bytes 0..<8", "data section starts with unused bytes")
    write("trailing_uncovered.safetensors", safetensors_bytes({"a": entry()}, F32x2 + b"junk"), "dataNotCovered",
          "trailing", "bytes after the last tensor")
    write("no_tensors_with_data.safetensors", safetensors_bytes({}, F32x2), "dataNotCovered", "trailing",
          "an empty header followed by data")
    write("metadata_not_object.safetensors", safetensors_bytes({"__metadata__": ["format", "pt"], "a": entry()}, F32x2),
          "invalidMetadata", "must be an object", "__metadata__ is an array")
    write("metadata_value_not_string.safetensors",
          safetensors_bytes({"__metadata__": {"format": "pt", "step": 100}, "a": entry()}, F32x2),
          "invalidMetadata", '"step"', "a metadata value that is a number")
    write("metadata_nested.safetensors",
          safetensors_bytes({"__metadata__": {"config": {"a": "b"}}, "a": entry()}, F32x2),
          "invalidMetadata", "found object", "a metadata value that is an object")
    write("missing_dtype.safetensors", safetensors_bytes({"a": {"shape": [2], "data_offsets": [0, 8]}}, F32x2),
          "invalidEntry", 'missing "dtype"', "an entry without dtype")
    write("missing_shape.safetensors", safetensors_bytes({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, F32x2),
          "invalidEntry", 'missing "shape"', "an entry without shape")
    write("missing_offsets.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": [2]}}, F32x2),
          "invalidEntry", 'missing "data_offsets"', "an entry without data_offsets")
    write("extra_field.safetensors",
          safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "strides": [1]}}, F32x2),
          "invalidEntry", 'unknown field "strides"', "an entry with an unknown field")
    write("pickle_file.bin", b"\x80\x02}q\x00.", "unsupportedFormat", "pickle",
          "a PyTorch pickle file, which is never unpickled")


def write_folder(name, files):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for fname, content in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(content if isinstance(content, bytes) else json.dumps(content, indent=1).encode())


def index(weight_map, total=None):
    return {"metadata": {"total_size": 16 if total is None else total}, "weight_map": weight_map}


def folders():
    s1 = valid_file({"a": ("F32", (2,), F32x2)})
    s2 = valid_file({"b": ("F32", (2,), F32x2)})
    s12 = valid_file({"a": ("F32", (2,), F32x2), "b": ("F32", (2,), F32x2)})
    idx = "model.safetensors.index.json"
    write_folder("index_missing_shard", {idx: index({"a": "model-00001-of-00002.safetensors",
                                                     "b": "model-00002-of-00002.safetensors"}),
                                         "model-00001-of-00002.safetensors": s1})
    record("index_missing_shard/" + idx, "missingShard", "model-00002-of-00002.safetensors",
           "the index names a shard file that does not exist")
    write_folder("index_parent_path", {idx: index({"a": "../all_dtypes.safetensors"})})
    record("index_parent_path/" + idx, "invalidIndex", "../all_dtypes.safetensors", "a shard path escaping the folder")
    write_folder("index_absolute_path", {idx: index({"a": "/etc/passwd"})})
    record("index_absolute_path/" + idx, "invalidIndex", "/etc/passwd", "an absolute shard path")
    write_folder("index_tensor_in_two_shards", {idx: index({"a": "s1.safetensors", "b": "s2.safetensors"}),
                                                "s1.safetensors": s12, "s2.safetensors": s2})
    record("index_tensor_in_two_shards", "tensorInTwoShards", '"b"', "a tensor present in two shards")
    write_folder("index_tensor_absent", {idx: index({"a": "s1.safetensors", "b": "s1.safetensors"}), "s1.safetensors": s1})
    record("index_tensor_absent/" + idx, "tensorMissingFromShard", '"b"', "a tensor listed in the index but absent from its shard")
    write_folder("index_tensor_unlisted", {idx: index({"a": "s1.safetensors"}), "s1.safetensors": s12})
    record("index_tensor_unlisted/" + idx, "tensorNotInIndex", '"b"', "a shard tensor the index does not list")
    write_folder("index_not_json", {idx: b"{weight_map: nope}"})
    record("index_not_json/" + idx, "invalidIndex", "invalid index", "an index that is not JSON")
    write_folder("index_no_weight_map", {idx: {"metadata": {"total_size": 0}}})
    record("index_no_weight_map/" + idx, "invalidIndex", "weight_map", "an index without weight_map")
    write_folder("index_weight_map_array", {idx: {"weight_map": ["a", "s1.safetensors"]}})
    record("index_weight_map_array/" + idx, "invalidIndex", "weight_map", "weight_map is an array")
    write_folder("index_shard_not_string", {idx: index({"a": 1}), "s1.safetensors": s1})
    record("index_shard_not_string/" + idx, "invalidIndex", 'weight_map["a"]', "a shard name that is a number")
    write_folder("index_negative_total", {idx: index({"a": "s1.safetensors"}, total=-5), "s1.safetensors": s1})
    record("index_negative_total/" + idx, "invalidIndex", "total_size", "a negative metadata.total_size")
    write_folder("index_hostile_shard", {idx: index({"a": "s1.safetensors"}),
                                         "s1.safetensors": safetensors_bytes({"a": entry(offsets=(0, 8))}, F32x2 + b"!")})
    record("index_hostile_shard/" + idx, "dataNotCovered", "s1.safetensors", "a valid index over a malformed shard")
    write_folder("folder_duplicate_across_files", {"a.safetensors": s12, "b.safetensors": s2})
    record("folder_duplicate_across_files", "tensorInTwoShards", '"b"', "two loose files holding the same tensor")
    write_folder("folder_pickle_only", {"pytorch_model.bin": b"\x80\x02}q\x00.", "config.json": {"model_type": "gpt2"}})
    record("folder_pickle_only", "unsupportedFormat", ".bin", "a folder with only PyTorch pickle weights")
    write_folder("folder_without_weights", {"config.json": {"model_type": "gpt2"}})
    record("folder_without_weights", "notACheckpoint", "no .safetensors", "a folder without any weights")
    record("does_not_exist.safetensors", "fileNotFound", "no such file", "a path that does not exist")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    single_files()
    folders()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {len(manifest)} hostile cases to {OUT}")


if __name__ == "__main__":
    main()

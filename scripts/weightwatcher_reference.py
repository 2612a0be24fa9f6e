#!/usr/bin/env python3
"""weightwatcher's per-layer metrics of a Hugging Face model folder, as JSON, and its time.

    python3 scripts/weightwatcher_reference.py MODEL_DIR|FILE.safetensors [-o OUT.json] [--compare WEIGHTSMITH.json]

Runs `weightwatcher.WeightWatcher(model=state_dict).analyze()` with its defaults (the package's
own power-law fit, no plots) on the folder's safetensors tensors (every shard), and writes one
record per analysed matrix with weightwatcher's columns. With --compare, reads the output of
`weightsmith spectrum MODEL --json` and prints the largest per-layer differences.

Used for fixtures/spectral/weightwatcher-*.json (the references the Swift tests compare with;
scripts/make_esd_fixtures.py writes them) and for the benchmark against `weightsmith spectrum MODEL` in BENCHMARKS.md.
"""
import argparse, glob, json, os, sys, time

COLUMNS = ["N", "M", "alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes", "lambda_max", "sv_max", "sv_min",
           "rank_loss", "weak_rank_loss", "norm", "log_norm", "spectral_norm", "log_spectral_norm", "alpha_weighted",
           "log_alpha_norm", "stable_rank", "matrix_rank", "entropy", "warning", "status"]
OURS = {"N": "n", "M": "m", "D": "ks_distance"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-o", "--out")
    ap.add_argument("--compare")
    a = ap.parse_args()
    t0 = time.time()
    import weightwatcher as ww
    import weightwatcher.constants
    from safetensors.torch import load_file
    t1 = time.time()
    sd = {}
    files = [a.model] if a.model.endswith(".safetensors") else sorted(glob.glob(os.path.join(a.model, "*.safetensors")))
    for f in files:
        sd.update(load_file(f))
    t2 = time.time()
    details = ww.WeightWatcher(model=sd).analyze()
    t3 = time.time()
    rows = []
    for _, r in details.iterrows():
        rec = {"name": r["name"] + ".weight"}
        for c in COLUMNS:
            v = r[c]
            rec[c] = v.item() if hasattr(v, "item") else v
        rows.append(rec)
    out = {"weightwatcher": ww.__version__, "model": os.path.basename(os.path.normpath(a.model)), "layers": rows}
    print(f"weightwatcher {ww.__version__}: {len(rows)} matrices, import {t1 - t0:.2f} s, load {t2 - t1:.2f} s, "
          f"analyze {t3 - t2:.2f} s", file=sys.stderr)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
            fh.write("\n")
    if a.compare:
        ours = {l["name"]: l for l in json.load(open(a.compare))["layers"]}
        worst = {}
        missing = [r["name"] for r in rows if r["name"] not in ours]
        for r in rows:
            o = ours.get(r["name"])
            if o is None:
                continue
            for c in ["alpha", "xmin", "D", "sigma", "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm",
                      "stable_rank", "entropy"]:
                d = abs(float(r[c]) - float(o[OURS.get(c, c)]))
                if d > worst.get(c, (0, ""))[0]:
                    worst[c] = (d, r["name"])
            for c in ["num_pl_spikes", "matrix_rank", "rank_loss", "warning"]:
                if r[c] != o[OURS.get(c, c)]:
                    worst.setdefault(c + " differs", []).append(r["name"])
        extra = sorted(set(ours) - {r["name"] for r in rows})
        print(json.dumps({"matrices": len(rows), "missing_in_weightsmith": missing, "extra_in_weightsmith": extra,
                          "largest_differences": worst}, indent=1))


if __name__ == "__main__":
    main()

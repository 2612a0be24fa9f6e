#!/usr/bin/env python3
"""mergekit's own outputs on the merge fixtures, for Tests/MergingTests/MergekitParityTests.swift.

Writes fixtures/merge/mergekit/NAME.yml (recipes with paths relative to the repository root) and
fixtures/merge/mergekit/NAME/model.safetensors (what mergekit-yaml writes for that recipe, float32).

Two kinds of recipes:
- one per method that weightsmith added after its first mergekit comparison (sce, ram,
  ramplus_tl, nearswap, arcee_fusion), with non-default parameters;
- every example recipe of mergekit's repository (examples/*.yml), rewritten for the 2-layer
  fixture models: model names become fixtures/merge/{base,ft-a,ft-b,ft-c} (the base_model
  becomes the fixture base, the other names ft-a, ft-b, ft-c in order of appearance), layer
  ranges are scaled from the recipe's layer count to 2 and dtype becomes float32. Everything
  else (gradients, filters, normalize, int8_mask, slices) is kept as written.

Usage (needs mergekit, e.g. `python3 -m venv --system-site-packages V && V/bin/pip install mergekit==0.1.5`,
which reuses the installed torch):
  python3 scripts/make_mergekit_parity.py --mergekit V/bin/mergekit-yaml --examples MERGEKIT_CHECKOUT/examples
Run from the repository root. Without --examples only the method recipes are regenerated.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join("fixtures", "merge", "mergekit")
BASE, A, B, C = (f"fixtures/merge/{m}" for m in ("base", "ft-a", "ft-b", "ft-c"))
FIXTURE_LAYERS = 2

METHOD_RECIPES = {
    "sce": f"""merge_method: sce
base_model: {BASE}
models:
  - model: {A}
  - model: {B}
  - model: {C}
dtype: float32
""",
    "sce_topk": f"""merge_method: sce
base_model: {BASE}
models:
  - model: {A}
  - model: {B}
  - model: {C}
parameters:
  select_topk: 0.3
dtype: float32
""",
    "ram": f"""merge_method: ram
base_model: {BASE}
models:
  - model: {A}
  - model: {B}
  - model: {C}
parameters:
  epsilon: 0.01
dtype: float32
""",
    "ramplus_tl": f"""merge_method: ramplus_tl
base_model: {BASE}
models:
  - model: {A}
  - model: {B}
  - model: {C}
parameters:
  epsilon: 0.01
  r: 0.5
  alpha: 0.4
dtype: float32
""",
    "nearswap": f"""merge_method: nearswap
base_model: {BASE}
models:
  - model: {BASE}
  - model: {A}
parameters:
  t: 0.005
dtype: float32
""",
    "arcee_fusion": f"""merge_method: arcee_fusion
base_model: {BASE}
models:
  - model: {BASE}
  - model: {A}
dtype: float32
""",
}


# A multi-document recipe (mergekit-multi): two named intermediates and a final merge using them.
MULTI_RECIPE = f"""# Multi-document recipe (mergekit-multi): written by scripts/make_mergekit_parity.py; output by mergekit-multi.
name: first-merge
merge_method: linear
models:
  - model: {A}
  - model: {B}
parameters:
  weight: 0.5
dtype: float32
---
name: second-merge
merge_method: slerp
base_model: first-merge
models:
  - model: {C}
parameters:
  t: 0.5
dtype: float32
---
# the final merge (no name)
merge_method: ties
base_model: {BASE}
models:
  - model: second-merge
    parameters:
      density: 0.6
      weight: 0.5
  - model: {A}
    parameters:
      density: 0.8
      weight: 0.5
dtype: float32
"""


def run_multi(mergekit):
    dest = os.path.join(OUT, "multi")
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, "recipe.yaml")
    with open(path, "w") as f:
        f.write(MULTI_RECIPE)
    multi = os.path.join(os.path.dirname(mergekit), "mergekit-multi")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        r = subprocess.run([multi, path, "--intermediate-dir", os.path.join(tmp, "inter"), "--out-path", out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"mergekit-multi failed:\n{r.stderr[-2000:]}")
        shutil.copyfile(os.path.join(out, "model.safetensors"), os.path.join(dest, "model.safetensors"))
    print(f"multi: {path} -> {dest}/model.safetensors")


def rewrite_example(text):
    """The example recipe with fixture models, layer ranges scaled to the fixture, float32."""
    doc = yaml.safe_load(text)
    names = {}
    if "base_model" in doc:
        names[doc["base_model"]] = BASE
    others = iter((A, B, C))

    def model(name):
        if name not in names:
            names[name] = next(others)
        return names[name]

    layers = 1
    for s in doc.get("slices", []):
        for src in s.get("sources", []):
            layers = max(layers, src["layer_range"][1])

    def visit(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("model", "base_model") and isinstance(v, str):
                    out[k] = model(v)
                elif k == "layer_range":
                    out[k] = [round(x * FIXTURE_LAYERS / layers) for x in v]
                elif k in ("dtype", "out_dtype"):
                    out[k] = "float32"
                else:
                    out[k] = visit(v)
            return out
        if isinstance(node, list):
            return [visit(x) for x in node]
        return node

    # base_model first so that it is named the fixture base before the models are visited.
    rewritten = visit({"base_model": doc["base_model"], **doc} if "base_model" in doc else doc)
    rewritten["dtype"] = "float32"
    return yaml.safe_dump(rewritten, sort_keys=False)


def run(mergekit, name, recipe_text, header):
    path = os.path.join(OUT, name + ".yml")
    with open(path, "w") as f:
        f.write(header + recipe_text)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        r = subprocess.run([mergekit, path, out, "--no-lazy-unpickle", "--allow-crimes"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"mergekit failed on {name}:\n{r.stderr[-2000:]}")
        dest = os.path.join(OUT, name)
        os.makedirs(dest, exist_ok=True)
        shutil.copyfile(os.path.join(out, "model.safetensors"), os.path.join(dest, "model.safetensors"))
    print(f"{name}: {path} -> {dest}/model.safetensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mergekit", default="mergekit-yaml", help="the mergekit-yaml executable")
    ap.add_argument("--examples", help="mergekit's examples/ folder (a checkout of arcee-ai/mergekit)")
    args = ap.parse_args()
    os.chdir(ROOT)
    os.makedirs(OUT, exist_ok=True)
    version = subprocess.run([args.mergekit, "--help"], capture_output=True, text=True).returncode
    if version != 0:
        sys.exit(f"{args.mergekit} does not run")
    for name, text in METHOD_RECIPES.items():
        run(args.mergekit, name, text, "# Written by scripts/make_mergekit_parity.py; output by mergekit-yaml.\n")
    run_multi(args.mergekit)
    if args.examples:
        for f in sorted(os.listdir(args.examples)):
            if not f.endswith((".yml", ".yaml")):
                continue
            with open(os.path.join(args.examples, f)) as fh:
                text = rewrite_example(fh.read())
            header = (f"# mergekit examples/{f}, rewritten by scripts/make_mergekit_parity.py for the fixture models\n"
                      "# (model names -> fixtures, layer ranges scaled to 2 layers, dtype float32); output by mergekit-yaml.\n")
            run(args.mergekit, "example-" + os.path.splitext(f)[0], text, header)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Re-runs every command of the walkthroughs in notebooks-text/ and checks its recorded output.

A notebook is Markdown. In each ```console block, a line starting with "$ " is a command run
with bash from the repository root; the lines after it, up to the next "$ " line or the end of
the block, are its recorded output (stdout and stderr together). A command must exit with 0
unless its block is fenced as ```console exit=N, and its output must match the recording after
normalisation: durations, throughputs, temporary paths and swift-build progress lines vary
between runs and are masked. `--update` rewrites the recordings with the real output.

Usage: scripts/check_notebooks.py [--update] [NOTEBOOK.md ...]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_NOISE = re.compile(
    r"^(Building for |Build complete|Build of product|\[\d+/\d+\] |Compiling |Write |Linking |Planning build|"
    r"Fetching |Fetched |Computing version|Computed |Creating working copy|Working copy of|warning: 'weightsmith')")
VOLATILE = [
    (re.compile(r"\d+(\.\d+)?\s?(ns|µs|us|ms|s|min|GB/s|MB/s|GiB/s|MiB/s|tok/s|tokens/s)\b"), "<MEASURE>"),
    (re.compile(r"ETA\s+\S+"), "ETA <T>"),
    (re.compile(r"/tmp/[^\s\"']*"), "/tmp/<PATH>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<SHA256>"),
    # merge --dry-run's automatic budget is a share of the memory free on the machine.
    (re.compile(r"memory budget: .*\(automatic: .*\)$"), "memory budget: <AUTOMATIC>"),
    # ... and its estimate adds the program's own resident set, which varies a little by run.
    (re.compile(r"estimated peak memory: \S+ \S+ \(largest job (\S+ \S+) \+ this program now \S+ \S+\)"),
     r"estimated peak memory: <TOTAL> (largest job \1 + this program now <RSS>)"),
]


# Plain progress lines ("merge: 40% (9/21 tensors), ...") depend on thread timing: not compared.
PROGRESS = re.compile(r"^[\w-]+: \d+% \(")


def normalise(lines):
    out = []
    for line in lines:
        line = line.rstrip()
        if BUILD_NOISE.match(line) or PROGRESS.match(line):
            continue
        for pat, rep in VOLATILE:
            line = pat.sub(rep, line)
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return out


def parse(text):
    """Yields (start, end, fence_info, commands) for each console block; commands are (cmd, output_lines)."""
    lines = text.split("\n")
    i = 0
    blocks = []
    while i < len(lines):
        m = re.match(r"^```console(.*)$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        info = m.group(1).strip()
        i += 1
        cmds = []
        while i < len(lines) and not lines[i].startswith("```"):
            if lines[i].startswith("$ "):
                cmds.append([lines[i][2:], []])
            elif cmds:
                cmds[-1][1].append(lines[i])
            i += 1
        blocks.append((start, i, info, cmds))
        i += 1
    return lines, blocks


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l for l in f if l.startswith("flags")), "").split()
    except OSError:
        return []


CPU_FLAGS = cpu_flags()


def run(cmd):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # OpenBLAS picks its kernels by CPU (Haswell, Zen, SkylakeX, ...), and their last bits differ;
    # 60 MEND meta-steps or an SVD-based merge carry that into printed digits. Recordings are made
    # with the Haswell (AVX2) kernels, which every AVX2 machine can run, so they hold across machines.
    if "avx2" in CPU_FLAGS:
        env.setdefault("OPENBLAS_CORETYPE", "Haswell")
    # Walkthroughs call `weightsmith` as an installed user would; use this checkout's release build.
    env["PATH"] = os.path.join(ROOT, ".build", "release") + os.pathsep + env.get("PATH", "")
    env["NO_COLOR"] = "1"
    p = subprocess.run(["bash", "-c", cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=1800)
    return p.returncode, p.stdout.decode("utf-8", "replace").split("\n")


def main(argv):
    update = "--update" in argv
    files = [a for a in argv if not a.startswith("--")]
    if not files:
        d = os.path.join(ROOT, "notebooks-text")
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".md")) if os.path.isdir(d) else []
    failures = 0
    checked = 0
    skipped = 0
    for path in files:
        text = open(path, encoding="utf-8").read()
        lines, blocks = parse(text)
        new_lines = list(lines)
        # Run in document order (later commands may use earlier outputs), splice in reverse.
        results = []
        for start, end, info, cmds in blocks:
            m = re.search(r"exit=(\d+)", info)
            want_code = int(m.group(1)) if m else 0
            # `requires=python:mod1,mod2`: a block that needs heavy peers (torch, transformers)
            # runs only where they are importable, and says so when skipped.
            req = re.search(r"requires=python:([\w,.]+)", info)
            if req:
                mods = req.group(1).split(",")
                probe = subprocess.run([sys.executable, "-c", "import " + ", ".join(mods)], capture_output=True)
                if probe.returncode != 0:
                    print(f"skip {os.path.relpath(path, ROOT)}: block at line {start + 1} needs Python {', '.join(mods)}")
                    skipped += 1
                    continue
            rendered = []
            for cmd, recorded in cmds:
                checked += 1
                code, out = run(cmd)
                shown = [l.rstrip() for l in out if not BUILD_NOISE.match(l)]
                while shown and shown[-1] == "":
                    shown.pop()
                if code != want_code:
                    failures += 1
                    print(f"FAIL {os.path.relpath(path, ROOT)}: `{cmd}` exited {code}, expected {want_code}")
                    print("\n".join("    " + l for l in shown[-30:]))
                elif not update and normalise(recorded) != normalise(shown):
                    failures += 1
                    print(f"FAIL {os.path.relpath(path, ROOT)}: output of `{cmd}` differs from the recording")
                    import difflib
                    for d in difflib.unified_diff(normalise(recorded), normalise(shown), "recorded", "actual", lineterm="", n=1):
                        print("    " + d)
                else:
                    print(f"ok   {os.path.relpath(path, ROOT)}: {cmd[:100]}")
                rendered.append("$ " + cmd)
                rendered.extend(shown)
            results.append((start, end, rendered))
        for start, end, rendered in reversed(results):
            new_lines[start + 1:end] = rendered
        if update:
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(new_lines))
    print(f"notebooks: {checked - failures} passed, {failures} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

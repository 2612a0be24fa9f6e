#!/usr/bin/env python3
"""Fault injection for every weightsmith writer (standard library only).

For each writer command on fixtures/family (merge, compose, convert to a folder and to a file,
convert-gguf on the committed llama GGUF, finetune full and LoRA with a few steps, extract-lora,
edit), the script runs the command and SIGKILLs it at several moments: after seeded random
delays spread over the command's measured run time, as soon as a staging entry
(`.OUT.weightsmith-PID-...`) appears, and as soon as the output path appears. After each kill
it checks that

  * the output path is either absent or complete (a folder holds the `.weightsmith-output`
    marker and `weightsmith inspect` loads it; a file loads with `inspect`),
  * every input is byte-identical (SHA-256 of every input file before and after),
  * a rerun (with --force, which replaces only a previous weightsmith output) succeeds, and
    afterwards nothing but the output is left in its folder (no staging entry, no lock file).

A merge split into parts (`merge --plan-only`, `--plan P --part I/N`, `--plan P --assemble`) gets
the same treatment: a part and the assembly are SIGKILLed after random delays and as soon as a
shard's temporary file appears; a part must leave only complete shards (each byte-identical to
the one-process merge's) and a receipt only when complete, its rerun must write the same bytes,
and the assembled folder must equal the one-process merge file for file, byte for byte.

It also runs the reproducers 1-6 of issue 13 (data loss through `OUT.partial`, `--force` over
inputs, writes into non-empty folders, two runs to one path, partial outputs, outputs checked
only after the work) and, when `ulimit -f` can be lowered (always, for an unprivileged process),
a "disk full" run of every writer (RLIMIT_FSIZE of 16 KB with SIGXFSZ ignored: writes fail with
EFBIG) that must leave nothing at the output path; and, where a tmpfs can be mounted (root with
CAP_SYS_ADMIN; skipped with a message otherwise), a run of every writer onto a tmpfs of half its
output's size (a real ENOSPC part-way through the write) that must fail saying so and leave the
small disk empty.

Usage: python3 scripts/fault_injection.py [--short] [--trials N] [--seed S] [--binary PATH]
--short (CI) runs 3 random kills per writer plus the two watched kills, in well under 60 s.
Exit status 0 when every check passed.
"""
import argparse
import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY = os.path.join(ROOT, "fixtures", "family")
GGUF = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures", "models", "llama_gguf.gguf")


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            print("  FAIL: " + what, flush=True)
        return cond


def sha_tree(path):
    """SHA-256 of every file under `path` (relative name -> digest)."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                h.update(fh.read())
            out[os.path.relpath(p, path)] = h.hexdigest()
    return out


def run(argv, timeout=120, preexec=None):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          preexec_fn=preexec)


class Writers:
    """The writer commands, each a function of the output path (and --force)."""

    def __init__(self, w, inp):
        self.w = w
        self.inp = inp

    def table(self):
        w, i = self.w, self.inp
        base, cap, prof = f"{i}/base", f"{i}/capital-full", f"{i}/profession-full"
        data = f"{i}/data/capital-train.jsonl"
        return [
            ("merge", "dir", cap, lambda o: [w, "merge", "--method", "linear", cap, prof, "--weight", "1", "--quiet", "-o", o]),
            ("compose", "dir", base, lambda o: [w, "compose", "--base", base, "0.5*a + 0.5*b", "--model", f"a={cap}", "--model",
                                          f"b={prof}", "--quiet", "-o", o]),
            ("convert", "dir", base, lambda o: [w, "convert", base, o, "--dtype", "bf16"]),
            ("convert-file", "file", base, lambda o: [w, "convert", base, o + ".safetensors"]),
            ("convert-gguf", "dir", f"{i}/llama_gguf.gguf", lambda o: [w, "convert-gguf", f"{i}/llama_gguf.gguf", o]),
            ("finetune-full", "dir", base, lambda o: [w, "finetune", base, data, "--steps", "3", "-o", o]),
            ("finetune-lora", "dir", base, lambda o: [w, "finetune", base, data, "--steps", "3", "--mode", "lora", "-o", o]),
            ("extract-lora", "dir", base, lambda o: [w, "extract-lora", "--base", base, "--tuned", cap, "--rank", "2", "-o", o]),
            ("edit", "dir", base, lambda o: [w, "edit", base, "--method", "rome", "--prompt", "The capital of France is",
                                       "--target", " Rome", "-o", o]),
        ]


def output_path(kind, o):
    return o + ".safetensors" if kind == "file" else o


def is_complete(w, kind, path):
    if kind == "dir" and not os.path.exists(os.path.join(path, ".weightsmith-output")):
        return False
    return run([w, "inspect", path]).returncode == 0


def leftovers(parent, name):
    """Hidden entries of this output (staging folders, lock files) in `parent`."""
    return sorted(e for e in os.listdir(parent) if e.startswith("." + name + "."))


def kill_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir, mode, delay=0.0):
    o = os.path.join(out_dir, f"{name}-{mode}")
    final = output_path(kind, o)
    parent, leaf = os.path.dirname(final), os.path.basename(final)
    p = subprocess.Popen(argv_of(o), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    if mode.startswith("staging") or mode.startswith("output"):
        while p.poll() is None and time.time() - t0 < 60:
            if mode.startswith("staging"):
                if any(not e.endswith("-lock") for e in leftovers(parent, leaf)):
                    break
            elif os.path.exists(final):
                break
            time.sleep(0.0005)
    else:
        time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    killed = rc == -signal.SIGKILL
    exists = os.path.lexists(final)
    label = f"{name} kill {mode} ({'killed' if killed else 'finished first'})"
    checks.ok(not exists or is_complete(w, kind, final), f"{label}: {final} exists and is not a complete output")
    checks.ok(sha_tree(inputs) == digests, f"{label}: an input changed")
    r = run(argv_of(o) + ["--force"])
    checks.ok(r.returncode == 0, f"{label}: the rerun failed: {r.stderr.strip()[-300:]}")
    checks.ok(is_complete(w, kind, final), f"{label}: the rerun's output is not complete")
    checks.ok(leftovers(parent, leaf) == [], f"{label}: left behind after the rerun: {leftovers(parent, leaf)}")
    return ("absent" if not exists else "complete", killed)


def disk_full_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir):
    """RLIMIT_FSIZE of 16 KB, SIGXFSZ ignored (inherited through exec): writes fail with EFBIG."""
    o = os.path.join(out_dir, f"{name}-full")
    final = output_path(kind, o)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, resource.RLIM_INFINITY))

    r = run(argv_of(o), preexec=limit)
    checks.ok(r.returncode != 0, f"{name} disk full: succeeded although writes past 16 KB fail")
    checks.ok(not os.path.lexists(final), f"{name} disk full: left {final}")
    checks.ok(leftovers(os.path.dirname(final), os.path.basename(final)) == [],
              f"{name} disk full: left {leftovers(os.path.dirname(final), os.path.basename(final))}")
    checks.ok(sha_tree(inputs) == digests, f"{name} disk full: an input changed")


def tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


class SmallDisk:
    """A small tmpfs mounted for one run (a real ENOSPC half-way through the write); None where
    mounting is not allowed (not root, or a container without CAP_SYS_ADMIN)."""
    checked = None

    @classmethod
    def available(cls, work):
        if cls.checked is None:
            d = os.path.join(work, "tmpfs-probe")
            os.makedirs(d)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True, text=True)
            cls.checked = r.returncode == 0
            if cls.checked:
                subprocess.run(["umount", d], check=True)
            else:
                print("tmpfs disk-full trials skipped: cannot mount a tmpfs here (" + (r.stderr.strip() or "mount failed") + ")")
            os.rmdir(d)
        return cls.checked


def tmpfs_full_trial(checks, w, inputs, digests, name, kind, argv_of, work, size):
    """Output on a tmpfs of half the output's size: the write fails with ENOSPC part-way. Nothing
    may be left on the small disk (no output, no staging entry, no lock), inputs unchanged, and the
    error must say the disk is full."""
    mnt = os.path.join(work, f"tmpfs-{name}")
    os.makedirs(mnt)
    pages = max(16, (size // 2) // 4096)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages * 4096}", "tmpfs", mnt], check=True)
    try:
        o = os.path.join(mnt, name)
        r = run(argv_of(o))
        checks.ok(r.returncode != 0, f"{name} tmpfs full ({pages * 4} KB): succeeded")
        checks.ok("No space left on device" in r.stderr, f"{name} tmpfs full: the error does not say so: {r.stderr.strip()[-300:]}")
        checks.ok(os.listdir(mnt) == [], f"{name} tmpfs full: left {os.listdir(mnt)}")
        checks.ok(sha_tree(inputs) == digests, f"{name} tmpfs full: an input changed")
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)


def overlap_trial(checks, w, inputs, digests, name, kind, primary, argv_of):
    """-o onto the writer's input, inside it and above it: refused (with --force too), inputs unchanged."""
    for target in (primary, os.path.join(primary, "sub"), os.path.dirname(primary)):
        for force in ([], ["--force"]):
            argv = argv_of(target)
            if kind == "file":  # the file output is OUT.safetensors: aim it at an input file
                onto = os.path.join(primary, "model.safetensors") if target == primary else target
                argv = [a if a != target + ".safetensors" else onto for a in argv]
            r = run(argv + force)
            checks.ok(r.returncode != 0, f"{name} -o {target} {' '.join(force)}: not refused")
    checks.ok(sha_tree(inputs) == digests, f"{name} overlap: an input changed")
    checks.ok(not os.path.exists(os.path.join(primary, "sub")), f"{name}: wrote inside an input")


def folder_bytes(path):
    """Every entry of a folder (hidden ones too) -> its bytes."""
    return {e: open(os.path.join(path, e), "rb").read() for e in sorted(os.listdir(path))}


def parts_trials(checks, w, inputs, digests, work, rng, trials):
    """Kill -9 of merge parts and of the assembly; reruns give the one-process merge's bytes."""
    d = os.path.join(work, "parts")
    os.makedirs(d)
    cap, prof = f"{inputs}/capital-full", f"{inputs}/profession-full"
    merge = [w, "merge", "--method", "ties", "--base", f"{inputs}/base", cap, prof, "--weight", "1", "--density", "0.5",
             "--shard-size", "700KB", "--quiet"]
    ref = os.path.join(d, "one", "out")
    r = run(merge + ["-o", ref])
    if not checks.ok(r.returncode == 0, f"parts: the one-process merge failed: {r.stderr.strip()[-300:]}"):
        return 0, 0
    expected = folder_bytes(ref)
    shards = sorted(e for e in expected if e.endswith(".safetensors"))
    kills = killed = 0
    for k in range(trials + 1):
        split = os.path.join(d, f"split{k}")
        os.makedirs(split)
        out, plan = os.path.join(split, "out"), os.path.join(split, "plan.json")
        r = run(merge + ["-o", out, "--plan-only", plan])
        if not checks.ok(r.returncode == 0, f"parts: --plan-only failed: {r.stderr.strip()[-300:]}"):
            return kills, killed
        part = lambda i: [w, "merge", "--plan", plan, "--part", f"{i}/2", "--quiet"]
        run(part(2))
        if k == 0:  # a clean run of part 1 sets the range of delays; its receipt removed, it runs again below
            t0 = time.time()
            run(part(1))
            dt = time.time() - t0
            os.remove(os.path.join(out, ".weightsmith-part-1-of-2.json"))
        for target, argv in (("part 1/2", part(1)), ("assemble", [w, "merge", "--plan", plan, "--assemble"])):
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if k == trials and target.startswith("part"):  # watched: as soon as a shard's temporary file appears
                while p.poll() is None and not any(".safetensors.tmp-" in e for e in os.listdir(out)):
                    time.sleep(0.0002)
            else:
                time.sleep(rng.uniform(0.0, dt))
            p.send_signal(signal.SIGKILL)
            was_killed = p.wait() == -signal.SIGKILL
            kills += 1
            killed += was_killed
            label = f"parts trial {k}: {target} killed ({'killed' if was_killed else 'finished first'})"
            now = os.listdir(out)
            for e in now:
                if e in shards:
                    checks.ok(open(os.path.join(out, e), "rb").read() == expected[e], f"{label}: {e} is not the one-process shard")
            rr = run(argv)
            again = rr.returncode == 0 or "already assembled" in rr.stderr
            checks.ok(again, f"{label}: the rerun failed: {rr.stderr.strip()[-300:]}")
        checks.ok(folder_bytes(out) == expected, f"parts trial {k}: the assembled folder differs from the one-process merge")
        checks.ok(sorted(os.listdir(split)) == ["out", "plan.json"], f"parts trial {k}: left {sorted(os.listdir(split))}")
    checks.ok(sha_tree(inputs) == digests, "parts: an input changed")
    return kills, killed


def reproducers(checks, w, inputs, work):
    """Issue 13, items 1-6."""
    fam = inputs
    res = {}
    d = os.path.join(work, "repro")
    os.makedirs(d)
    merge = lambda *a: run([w, "merge", "--method", "linear", *a, "--weight", "1", "--quiet"])

    # 1. An existing OUT.partial is never deleted; an input named OUT.partial is never touched.
    os.makedirs(f"{d}/m.partial")
    open(f"{d}/m.partial/precious.txt", "w").write("x")
    r = merge(f"{fam}/capital-full", f"{fam}/profession-full", "-o", f"{d}/m")
    ok1 = r.returncode == 0 and open(f"{d}/m.partial/precious.txt").read() == "x"
    shutil.copytree(f"{fam}/capital-full", f"{d}/n.partial")
    before = sha_tree(f"{d}/n.partial")
    r = merge(f"{d}/n.partial", f"{fam}/profession-full", "-o", f"{d}/n")
    ok1 = ok1 and r.returncode == 0 and sha_tree(f"{d}/n.partial") == before and os.path.exists(f"{d}/n/config.json")
    res[1] = checks.ok(ok1, "repro 1: OUT.partial deleted, or an input named OUT.partial touched")

    # 2. --force never deletes inputs: -o p with inputs p/cap, p/prof; -o cap --force with cap an input.
    os.makedirs(f"{d}/p")
    shutil.copytree(f"{fam}/capital-full", f"{d}/p/cap")
    shutil.copytree(f"{fam}/profession-full", f"{d}/p/prof")
    before = sha_tree(f"{d}/p")
    rs = [merge(f"{d}/p/cap", f"{d}/p/prof", "-o", f"{d}/p", *f) for f in ([], ["--force"])]
    rs.append(merge(f"{d}/p/cap", f"{d}/p/prof", "-o", f"{d}/p/cap", "--force"))
    res[2] = checks.ok(all(r.returncode != 0 for r in rs) and sha_tree(f"{d}/p") == before,
                       "repro 2: merge --force replaced or deleted an input")

    # 3. extract-lora and finetune --mode lora never write into non-empty folders without --force.
    ex = lambda rank, *a: run([w, "extract-lora", "--base", f"{fam}/base", "--tuned", f"{fam}/capital-full", "--rank", str(rank),
                               "-o", f"{d}/lora", *a])
    r8 = ex(8)
    r2 = ex(2)
    cfg = open(f"{d}/lora/adapter_config.json").read() if os.path.exists(f"{d}/lora/adapter_config.json") else ""
    ok3 = r8.returncode == 0 and r2.returncode != 0 and '"r": 8' in cfg.replace(" ", "").replace('"r":8', '"r": 8')
    base_before = sha_tree(f"{fam}/base")
    rl = run([w, "finetune", f"{fam}/base", f"{fam}/data/capital-train.jsonl", "--steps", "1", "--mode", "lora", "-o", f"{fam}/base"])
    ok3 = ok3 and rl.returncode != 0 and sha_tree(f"{fam}/base") == base_before
    res[3] = checks.ok(ok3, "repro 3: an existing adapter or the input model folder was written into")

    # 4. Two merges to one output: one writes it, the other fails fast with a clear message.
    ok4 = True
    for k in range(6):
        out = f"{d}/race{k}"
        argv = [w, "merge", "--method", "linear", f"{fam}/capital-full", f"{fam}/profession-full", "--weight", "1", "--quiet", "-o", out]
        ps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate() for p in ps]
        rcs = sorted(p.returncode for p in ps)
        msgs = " ".join(e for _, e in outs)
        ok4 = ok4 and rcs[0] == 0 and (rcs[1] == 0 or "another weightsmith run" in msgs or "already exists" in msgs)
        ok4 = ok4 and is_complete(w, "dir", out) and leftovers(d, f"race{k}") == []
    res[4] = checks.ok(ok4, "repro 4: two merges to one output destroyed each other")

    # 5 is covered by the kill trials (finetune killed as soon as its output or staging appears;
    #   convert killed leaves nothing that a later run does not remove); here: finetune on a full disk.
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, resource.RLIM_INFINITY))
    r = run([w, "finetune", f"{fam}/base", f"{fam}/data/capital-train.jsonl", "--steps", "1", "-o", f"{d}/x"], preexec=limit)
    r2 = run([w, "finetune", f"{fam}/base", f"{fam}/data/capital-train.jsonl", "--steps", "1", "-o", f"{d}/x"])
    res[5] = checks.ok(r.returncode != 0 and r2.returncode == 0 and leftovers(d, "x") == [],
                       "repro 5: finetune on a full disk left a partial output or blocked the rerun")

    # 6. finetune and edit check the output before any work: refused without a training step or edit.
    os.makedirs(f"{d}/busy")
    open(f"{d}/busy/notes.txt", "w").write("mine")
    rf = run([w, "finetune", f"{fam}/base", f"{fam}/data/capital-train.jsonl", "--steps", "50", "-o", f"{d}/busy"])
    re_ = run([w, "edit", f"{fam}/base", "--method", "rome", "--prompt", "The capital of France is", "--target", " Rome",
               "-o", f"{d}/busy"])
    ok6 = rf.returncode != 0 and "step" not in rf.stdout and "fine-tuning" not in rf.stdout
    ok6 = ok6 and re_.returncode != 0 and "edit of" not in re_.stdout and os.listdir(f"{d}/busy") == ["notes.txt"]
    res[6] = checks.ok(ok6, "repro 6: finetune or edit did work before refusing the output")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="CI mode: few kills per writer, < 60 s")
    ap.add_argument("--trials", type=int, default=None, help="random kills per writer (default 21, --short 3)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "weightsmith"))
    ap.add_argument("--only", default=None, help="comma-separated writer names")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    w = args.binary
    if not os.access(w, os.X_OK):
        sys.exit(f"{w}: not built (swift build -c release -Xswiftc -enable-testing)")
    trials = args.trials if args.trials is not None else (3 if args.short else 21)
    rng = random.Random(args.seed)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="ws-fault-")
    checks = Checks()
    try:
        inputs = os.path.join(work, "inputs")
        os.makedirs(inputs)
        for n in ("base", "capital-full", "profession-full", "data"):
            shutil.copytree(os.path.join(FAMILY, n), os.path.join(inputs, n))
        shutil.copy(GGUF, os.path.join(inputs, "llama_gguf.gguf"))
        digests = sha_tree(inputs)
        out_dir = os.path.join(work, "out")
        os.makedirs(out_dir)
        table = Writers(w, inputs).table()
        if args.only:
            keep = set(args.only.split(","))
            table = [t for t in table if t[0] in keep]
        total_kills = 0
        tmpfs_trials = 0
        print(f"{'writer':<15} {'run s':>6} {'kills':>5} {'killed':>6} {'absent':>6} {'complete':>8}")
        for name, kind, primary, argv_of in table:
            # A clean run measures the time the random kills are spread over.
            # Two clean runs (the first warms the page cache); the faster one sets the range of delays.
            dt = None
            for c in range(2):
                o = os.path.join(out_dir, f"{name}-clean{c}")
                t0 = time.time()
                r = run(argv_of(o))
                dt = min(dt or 1e9, time.time() - t0)
                if r.returncode != 0:
                    break
            if not checks.ok(r.returncode == 0 and is_complete(w, kind, output_path(kind, o)),
                             f"{name}: a clean run failed: {r.stderr.strip()[-300:]}"):
                continue
            results = []
            for k in range(trials):
                results.append(kill_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir, f"r{k}",
                                          delay=rng.uniform(0.0, dt)))
            results.append(kill_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir, "staging"))
            results.append(kill_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir, "output"))
            total_kills += len(results)
            disk_full_trial(checks, w, inputs, digests, name, kind, argv_of, out_dir)
            if SmallDisk.available(work):
                tmpfs_full_trial(checks, w, inputs, digests, name, kind, argv_of, work, tree_size(output_path(kind, o)))
                tmpfs_trials += 1
            overlap_trial(checks, w, inputs, digests, name, kind, primary, argv_of)
            states = [s for s, _ in results]
            print(f"{name:<15} {dt:6.2f} {len(results):5d} {sum(k for _, k in results):6d} {states.count('absent'):6d} "
                  f"{states.count('complete'):8d}",
                  flush=True)
        if not args.only or "parts" in args.only.split(","):
            t0 = time.time()
            n, k = parts_trials(checks, w, inputs, digests, work, rng, trials)
            total_kills += n
            print(f"{'merge parts':<15} {time.time() - t0:6.2f} {n:5d} {k:6d}   (parts and assembly killed, rerun, compared)", flush=True)
        res = {} if args.only else reproducers(checks, w, inputs, work)
        if res:
            print("issue 13 reproducers: " + ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in sorted(res.items())))
        if tmpfs_trials:
            print(f"{tmpfs_trials} writers run onto a tmpfs of half their output's size: ENOSPC part-way, nothing left on it")
        print(f"{total_kills} kill -9 trials, {checks.passed} checks passed, {len(checks.failures)} failed, "
              f"{time.time() - t_start:.1f} s")
    finally:
        if args.keep:
            print("work folder: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if checks.failures else 0)


if __name__ == "__main__":
    main()

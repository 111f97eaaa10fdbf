"""test_run.py — `prunebench run` end to end on stories260K.

1. A small sweep (dense; depth by magnitude and Taylor, FLAP and LLM-Pruner at 20% and 40%)
   runs; its index.h5 opens with h5py into a pandas DataFrame with one row per run, and
   every run file has the documented groups.
2. Killed with SIGKILL at 6 moments and rerun each time: finished runs are kept (their files
   are not rewritten), no run is duplicated, no partial file is ever visible under a final
   name, and the final index equals an uninterrupted run's (every column but the times).
3. Two shards run in parallel, merged with `prunebench index`, give the same index.
4. `--dry-run` lists every run; `--only` runs one; a malformed file is a located error.
5. Importance: every finished pruned run file has /importance; a sweep of depth (PPL, modules)
   and LLM-Pruner at 3 ratios reuses the scores (the progress lines say "(scores reused)"),
   each file holds them in the documented shape, identical across the ratios, and
   `prunebench plot DIR --kind importance` draws them into a PNG.

usage: test_run.py        Exit 77 (skip) without ../shared, h5py or pandas."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

try:
    import h5py
    import numpy as np
    import pandas as pd
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

SHARED = os.environ.get("PB_SHARED", "")
BIN = os.environ.get("PB_BIN", "prunebench")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "exp_run")
failures = 0

EXP = """\
name: smoke
models:
  - name: stories260K
    path: {shared}/models/stories260K/stories260K.gguf
    tokenizer: {shared}/models/stories260K/tok512.bin
calibration: {{dataset: tinystories, split: train, samples: 4, seq_len: 64, sampling: contiguous}}
methods:
  - {{name: depth-mag, method: depth, criterion: magnitude}}
  - {{name: depth-taylor, method: depth, criterion: taylor}}
  - {{name: flap, method: flap}}
  - {{name: llm-pruner, method: llm-pruner}}
  - {{name: depth-guarded, method: depth, criterion: magnitude, protect_first: 2, protect_last: 2}}
sweep:
  ratio: [0.2, 0.4]
evaluation:
  ppl: {{datasets: [tinystories], seq_len: 64, max_windows: 20}}
  zeroshot: {{tasks: [piqa], limit: 8}}
"""


IMP = """\
name: imp
models:
  - name: stories260K
    path: {shared}/models/stories260K/stories260K.gguf
    tokenizer: {shared}/models/stories260K/tok512.bin
calibration: {{dataset: tinystories, split: train, samples: 4, seq_len: 64, sampling: contiguous}}
methods:
  - {{name: depth-ppl, method: depth, criterion: ppl, granularity: module}}
  - {{name: llm-pruner, method: llm-pruner, criterion: param_second}}
sweep:
  ratio: [0.1, 0.2, 0.3]
evaluation:
  ppl: {{datasets: [tinystories], seq_len: 64, max_windows: 4}}
"""


REC = """\
recovery:
  lora: {{data: {shared}/data/tinystories/tinystories.txt, format: text, rank: 4, alpha: 8.0, lr: 0.001,
         max_steps: 3, batch: 4, micro_batch: 2, cutoff: 64, val_size: 0}}
"""


def check(ok, msg):
    global failures
    if not ok:
        failures += 1
        print("FAIL: " + msg, file=sys.stderr)
    return ok


def run(*args, **kw):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, **kw)


def index_frame(d):
    with h5py.File(os.path.join(d, "index.h5"), "r") as f:
        df = pd.DataFrame(f["summary"][:])
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda x: x.decode() if isinstance(x, bytes) else x)
    return df.sort_values("run_id").reset_index(drop=True)


def final_files(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".h5") and f != "index.h5")


def main():
    if not os.path.exists(os.path.join(SHARED, "models", "stories260K", "stories260K.gguf")):
        print("SKIP: ../shared/models/stories260K absent", file=sys.stderr)
        return 77
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    exp = os.path.join(TMP, "smoke.yaml")
    with open(exp, "w") as f:
        f.write(EXP.format(shared=os.path.abspath(SHARED)))
    data = ["--data-dir", os.path.join(SHARED, "data"), "--threads", "2"]

    # the plan
    r = run("run", exp, "--dry-run", "--out", os.path.join(TMP, "full"), *data)
    if not check(r.returncode == 0, f"dry run: {r.stderr.strip()}"):
        return 1
    lines = [l for l in r.stdout.splitlines() if re.match(r"^\d+\s+[0-9a-f]{12}\s", l)]
    n_runs = len(lines)
    print(f"  dry run: {n_runs} runs")
    check(n_runs >= 5, f"expected at least 5 runs, got {n_runs}:\n{r.stdout}")

    # 1. uninterrupted
    t0 = time.time()
    r = run("run", exp, "--out", os.path.join(TMP, "full"), *data)
    if not check(r.returncode == 0, f"run: {r.stderr.strip()[-500:]}"):
        return 1
    took = time.time() - t0
    full = os.path.join(TMP, "full", "smoke")
    df = index_frame(full)
    print(f"  uninterrupted: {len(df)} runs in {took:.1f} s; index columns {len(df.columns)}")
    # depth-guarded at 40% needs 2 of the 1 unprotected blocks: that run fails, is recorded as
    # failed with its error, and the sweep goes on
    bad = (df["method"] == "depth-guarded") & (df["ratio"] == 0.4)
    check(len(df) == n_runs and (df[~bad]["status"] == "done").all() and (df[bad]["status"] == "failed").all()
          and bad.sum() == 1, f"index: {df[['run_id', 'method', 'ratio', 'status']]}")
    if bad.sum() == 1:
        with h5py.File(os.path.join(full, df[bad]["run_id"].iloc[0] + ".h5"), "r") as f:
            check("protect" in str(f.attrs["error"]), f"failed run's error: {f.attrs['error']}")
    check(df["method"].tolist().count("dense") == 1, "one dense run")
    dense = df[df["method"] == "dense"].iloc[0]
    check(np.isfinite(dense["ppl_tinystories"]) and dense["params_after"] == dense["params_before"],
          f"dense row: {dense.to_dict()}")
    check((df[df["method"] != "dense"]["params_after"] < dense["params_before"]).all(), "pruned runs smaller")
    with h5py.File(os.path.join(full, final_files(full)[0]), "r") as f:
        for g in ("params", "structure", "ppl", "zeroshot"):
            check(g in f, f"run file lacks /{g}")
        check(f.attrs["status"] in ("done", b"done"), "status attribute")
    # the scores each pruned run ranked by (not the dense run, not the failed one)
    for _, row in df.iterrows():
        with h5py.File(os.path.join(full, row["run_id"] + ".h5"), "r") as f:
            want = row["method"] != "dense" and row["status"] == "done"
            check(("importance" in f) == want, f"{row['method']} {row['ratio']}: /importance {'absent' if want else 'present'}")

    # 2. kills
    killed = os.path.join(TMP, "killed")
    kd = os.path.join(killed, "smoke")
    # Kill moments tied to progress, not to wall time (which varies with the machine's load):
    # attempt 0 is killed while it loads; every later attempt right after it reports a finished
    # run, plus a growing delay, so that the kill lands inside the next run's pruning,
    # evaluation or file writing, or inside the index rebuild at the end.
    delays = [0.0, 0.0, 0.02, 0.05, 0.1, 0.2]
    kept = {}
    for k, delay in enumerate(delays):
        p = subprocess.Popen([BIN, "run", exp, "--out", killed, *data], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        if k == 0:
            time.sleep(0.05)
        else:
            for line in p.stderr:
                if line.startswith("[1/"):
                    break
            time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stderr.close()
        if os.path.isdir(kd):
            for fn in final_files(kd):
                path = os.path.join(kd, fn)
                try:
                    with h5py.File(path, "r") as f:
                        st = f.attrs["status"]
                    check(st in ("done", "failed", b"done", b"failed"), f"kill {k}: {fn} has status {st}")
                except OSError as e:
                    check(False, f"kill {k}: {fn} is not a complete HDF5 file ({e})")
                m = os.stat(path).st_mtime_ns
                check(kept.get(fn, m) == m, f"kill {k}: finished run {fn} was rewritten")
                kept[fn] = m
    print(f"  {len(delays)} kills: {len(kept)} of {n_runs} runs had finished before the last kill")
    check(len(kept) < n_runs, "every run had finished before the last kill: the kills tested nothing")
    r = run("run", exp, "--out", killed, *data)
    check(r.returncode == 0, f"rerun after kills: {r.stderr.strip()[-300:]}")
    dk = index_frame(kd)
    cols = [c for c in df.columns if c not in ("seconds",)]
    check(final_files(kd) == final_files(full), f"run files differ: {final_files(kd)} vs {final_files(full)}")
    check(not [f for f in os.listdir(kd) if "pbtmp" in f], "temporary files left")
    check(df[cols].equals(dk[cols]), f"index after kills differs:\n{df[cols]}\n{dk[cols]}")

    # 3. shards in parallel, then index
    sh = os.path.join(TMP, "shards")
    ps = [subprocess.Popen([BIN, "run", exp, "--out", sh, "--shard", f"{k}/2", *data], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    for p in ps:
        _, err = p.communicate()
        check(p.returncode == 0, f"shard: {err.strip()[-300:]}")
    r = run("index", os.path.join(sh, "smoke"))
    check(r.returncode == 0, f"index: {r.stderr.strip()}")
    ds = index_frame(os.path.join(sh, "smoke"))
    check(df[cols].equals(ds[cols]), f"sharded index differs:\n{df[cols]}\n{ds[cols]}")
    print(f"  2 shards merged: {len(ds)} rows, equal to the unsharded index")

    # 4. LoRA recovery inside a run: the curve lands in /training
    rec = os.path.join(TMP, "rec.yaml")
    with open(rec, "w") as f:
        f.write(EXP.format(shared=os.path.abspath(SHARED)).replace("name: smoke", "name: rec").replace(
            "ratio: [0.2, 0.4]", "ratio: [0.2]\n  method: [depth-mag]") + REC.format(shared=os.path.abspath(SHARED)))
    r = run("run", rec, "--out", os.path.join(TMP, "rec"), *data)
    if check(r.returncode == 0, f"run with recovery: {r.stderr.strip()[-300:]}"):
        dr = index_frame(os.path.join(TMP, "rec", "rec"))
        pr = dr[dr["method"] == "depth-mag"]
        check(len(pr) == 1 and (pr["status"] == "done").all(), f"recovery run: {dr[['method', 'status']]}")
        if len(pr) == 1:
            with h5py.File(os.path.join(TMP, "rec", "rec", pr["run_id"].iloc[0] + ".h5"), "r") as f:
                steps = f["training/step"][:] if "training" in f else []
                check(list(steps) == [1, 2, 3] and np.isfinite(f["training/loss"][:]).all(),
                      f"training curve: {list(steps)}")
        print(f"  recovery: {len(pr)} run with a 3-step LoRA curve")

    # 5. importance scores, reused across ratios, in the files and in a plot
    test_importance(data)

    # 6. --only, and a malformed file
    one = os.path.join(TMP, "one")
    r = run("run", exp, "--out", one, "--only", df["run_id"][0], *data)
    check(r.returncode == 0 and len(final_files(os.path.join(one, "smoke"))) == 1, f"--only: {r.stderr.strip()}")
    bad = os.path.join(TMP, "bad.yaml")
    with open(bad, "w") as f:
        f.write(EXP.format(shared=SHARED).replace("ratio: [0.2, 0.4]", "ratios: [0.2, 0.4]"))
    r = run("run", bad, "--dry-run")
    err = r.stderr.strip()
    check(r.returncode == 1 and len(err.splitlines()) == 1 and "bad.yaml:" in err and "ratio" in err,
          f"malformed file: exit {r.returncode}: {err}")

    # 7. evaluation on CUDA: where the backend cannot be had, the experiment stops with one
    # line naming the file before any run is recorded; with a GPU its runs finish
    gpu = os.path.join(TMP, "gpu.yaml")
    with open(gpu, "w") as f:
        f.write(EXP.format(shared=SHARED).replace("name: smoke", "name: gpu").replace(
            "evaluation:\n", "evaluation:\n  device: cuda\n  dtype: f32\n"))
    out = os.path.join(TMP, "gpu_out")
    shutil.rmtree(out, ignore_errors=True)
    r = run("run", gpu, "--out", out, *data)
    err = r.stderr.strip()
    gdir = os.path.join(out, "gpu")
    if r.returncode != 0:
        check(r.returncode == 1 and "gpu.yaml: evaluation: --device cuda:" in err.splitlines()[-1]
              and (not os.path.isdir(gdir) or not final_files(gdir)), f"device cuda without a GPU: {err}")
        print(f"  device cuda: {err.splitlines()[-1]}")
    else:
        check(len(final_files(gdir)) == len(df), "device cuda: every run file")
        print("  device cuda: the run finished on the GPU")
    return 1 if failures else 0


def test_importance(data):
    exp = os.path.join(TMP, "imp.yaml")
    with open(exp, "w") as f:
        f.write(IMP.format(shared=os.path.abspath(SHARED)))
    out = os.path.join(TMP, "imp")
    r = run("run", exp, "--out", out, *data)
    if not check(r.returncode == 0, f"importance sweep: {r.stderr.strip()[-500:]}"):
        return
    d = os.path.join(out, "imp")
    df = index_frame(d)
    # stories260K: 5 layers, 4 KV heads, 172 FFN channels
    shapes = {"depth-ppl": {"scores": ((5, 2), "module")},
              "llm-pruner": {"scores": ((5, 4), "head"), "channels": ((5, 172), "channel")}}
    for method, tables in shapes.items():
        rows = df[df["method"] == method]
        check(len(rows) == 3 and (rows["status"] == "done").all(), f"{method}: {rows[['ratio', 'status']]}")
        # the first run of a method computes its scores, the other two ratios reuse them
        lines = [l for l in r.stderr.splitlines() if f"/{method}/" in l and "done" in l]
        reused = [l for l in lines if "(scores reused)" in l]
        check(len(lines) == 3 and len(reused) == 2, f"{method}: progress lines {lines}")
        first = {}
        for _, row in rows.iterrows():
            with h5py.File(os.path.join(d, row["run_id"] + ".h5"), "r") as f:
                if not check("importance" in f, f"{method} ratio {row['ratio']}: no /importance"):
                    continue
                g = f["importance"]
                check(g.attrs.get("granularity") == tables["scores"][1], f"{method}: granularity {dict(g.attrs)}")
                for name, (shape, gran) in tables.items():
                    if not check(name in g, f"{method} ratio {row['ratio']}: no /importance/{name}"):
                        continue
                    a = g[name][()]
                    check(a.shape == shape and g[name].attrs.get("granularity") == gran
                          and np.isfinite(a).all(), f"{method}/{name}: shape {a.shape}, {dict(g[name].attrs)}")
                    # the unpruned model's scores: the same bits whatever the ratio
                    if name in first:
                        check(np.array_equal(a, first[name]), f"{method}/{name}: ratio {row['ratio']} differs")
                    else:
                        first[name] = a
        print(f"  importance {method}: {', '.join(f'{k} {v.shape}' for k, v in first.items())}; "
              f"{len(reused)} of {len(lines)} runs reused the scores")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("  note: no matplotlib for this interpreter: plot not checked")
        return
    png = os.path.join(TMP, "importance.png")
    if os.path.exists(png):
        os.remove(png)
    p = subprocess.run([BIN, "plot", d, "--kind", "importance", "--out", png], capture_output=True, text=True,
                       env=dict(os.environ, PRUNEBENCH_PYTHON=sys.executable))
    ok = p.returncode == 0 and os.path.exists(png)
    if check(ok, f"plot --kind importance: exit {p.returncode}: {p.stderr.strip()[-300:]}"):
        with open(png, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "plot: not a PNG")
        print(f"  plot --kind importance: {png} ({os.path.getsize(png)} bytes)")


if __name__ == "__main__":
    sys.exit(main())

"""test_results_h5py.py — the results files as a researcher reads them: h5py opens every run
file and index.h5 that exp_results_gen wrote from the spec below, and every documented field
is checked for presence, type and value; then the README's lines load the index into a
pandas DataFrame (numpy record checks only, with a note, where pandas is not installed).

Usage: test_results_h5py.py EXP_RESULTS_GEN. Floats are compared exactly: each goes through
JSON (Python's repr, which round-trips), strtod and float64 storage, none of which rounds."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIP: {e} (needs python3-h5py and python3-numpy)")
    sys.exit(77)

GEN = sys.argv[1]
SRC = os.environ.get("PB_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(os.environ.get("PB_TMP", "/tmp"), "exp_results_py")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def same(a, b):
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def num(x):
    return float("nan") if x is None else float(x)


BIG_SEED = 2**62 + 5   # beyond 2^53: goes through the spec as a string, must stay exact
RUNS = [
    {   # a depth run with everything, two extra datasets/tasks outside the index's columns
        "run_id": "0a1b2c3d4e5f", "experiment": "unit", "label": "tiny/taylor+/ratio=0.2/seed=0",
        "config": "name: unit\nmodel: café ✓\nratio: 0.2\n", "model": "tiny", "method": "depth",
        "criterion": "taylor", "granularity": "block", "ratio": 0.2, "native": None, "num_blocks": 2,
        "seed": str(BIG_SEED),
        "params": ["7000000000", "5600000000", "6800000000", "5400000000"],
        "structure": {"n_heads": [8, 8, 8], "n_kv": [4, 4, 4], "ffn": [172, 172, 172],
                      "removed": [[3, 0, 0], [1, 0, 0]]},
        "ppl": {"wikitext2": [20.25, 3.008, 0.0125, 245760, 1920, 128], "ptb": [35.5, 3.57, 0.02, 82000, 641, 128],
                "c4": [18.0, 2.89, 0.01, 1000, 8, 128], "tinystories": [5.5, 1.7, 0.03, 2000, 16, 128],
                "lambada": [99.0, 4.6, 0.1, 10, 1, 10], "/data/my text.txt": [7.0, 1.9, 0.1, 50, 2, 32]},
        "zeroshot": {t: [0.5 + i / 100, 0.01, 0.6 + i / 100, 0.02, 0.6 + i / 100, 100 + i]
                     for i, t in enumerate(["boolq", "piqa", "hellaswag", "winogrande", "arc_easy",
                                            "arc_challenge", "openbookqa", "mmlu"])},
        "zeroshot_mean": 63.5,
        "latency": {"1": [12.5, 3.25, 307.0, "123456789"], "4": [20.0, 4.0, 1000.0, "223456789"],
                    "16": [50.0, 8.0, 2000.0, "323456789"]},
        "importance": {"rows": 5, "cols": 1, "scores": [0.5, 0.25, None, 0.125, 1.5], "granularity": "block"},
        "training": {"step": [10, 20, 30], "loss": [2.5, 2.25, 2.0], "lr": [1e-4, 9e-5, 8e-5],
                     "grad_norm": [1.5, 1.25, 1.0], "val_loss": [None, None, 2.125]},
    },
    {   # failed after counting parameters
        "run_id": "ffffffffffff", "experiment": "unit", "label": "tiny/flap/ratio=0.5/seed=1",
        "config": "x: 1\n", "model": "tiny", "method": "flap", "criterion": "wifv", "granularity": "channel",
        "ratio": 0.5, "native": None, "num_blocks": -1, "seed": 1,
        "params": [1000, 1000, 900, 900], "error": "calibration: out of memory (layer 3)",
    },
    {   # the dense model: NULL strings, no ratio, one perplexity, a batch-2 speed only
        "run_id": "000000000000", "experiment": "unit", "label": "tiny/dense",
        "config": "dense: true\n", "model": "tiny", "method": "dense", "criterion": None, "granularity": None,
        "ratio": None, "native": None, "num_blocks": -1, "seed": 0,
        "ppl": {"wikitext2": [15.0, 2.7, 0.01, 4096, 32, 128]},
        "latency": {"2": [7.0, 1.0, 1500.0, 1000]},
    },
    {   # width: heads and channels removed, a (layers, units) importance with padding
        "run_id": "7e57a11d0c0d", "experiment": "unit", "label": "tiny/wanda-sp/p=0.3/seed=0",
        "config": "y: 2\n", "model": "tiny", "method": "wanda-sp", "criterion": "wanda", "granularity": "head",
        "ratio": None, "native": 0.3, "num_blocks": -1, "seed": 0,
        "params": [1000, 700, 900, 600],
        "structure": {"n_heads": [6, 0], "n_kv": [3, 0], "ffn": [100, 172],
                      "removed": [[0, 3, 1], [1, 1, 0], [0, 4, 5], [0, 4, 9]]},
        "zeroshot": {"boolq": [0.625, 0.05, None, None, 0.625, 64]},
        "importance": {"rows": 2, "cols": 4, "scores": [1, 2, 3, 4, 5, 6, None, -1], "granularity": "head",
                       "channels": {"rows": 2, "cols": 3, "scores": [0.5, None, None, 1.5, 2.5, 3.5]}},
    },
]
TASKS = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
PPLS = ["wikitext2", "ptb", "c4", "tinystories"]
COLUMNS = ["run_id", "model", "method", "criterion", "granularity", "ratio", "native", "num_blocks", "seed",
           "status", "params_before", "params_after", "params_after_no_embed"] + ["ppl_" + p for p in PPLS] + \
          ["acc_" + t for t in TASKS] + ["acc_mean", "latency_ms", "throughput"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def expected_row(r):
    """The index row the spec's run must give."""
    p = [int(x) for x in r["params"]] if "params" in r else [-1, -1, -1, -1]
    lat = r.get("latency", {})
    zs = r.get("zeroshot", {})
    row = {"run_id": r["run_id"], "model": r["model"], "method": r["method"], "criterion": r["criterion"] or "",
           "granularity": r["granularity"] or "", "ratio": num(r["ratio"]), "native": num(r["native"]),
           "num_blocks": r["num_blocks"], "seed": int(r["seed"]), "status": "failed" if r.get("error") else "done",
           "params_before": p[0], "params_after": p[1], "params_after_no_embed": p[3],
           "acc_mean": num(r.get("zeroshot_mean")),
           "latency_ms": num(lat["1"][1]) if "1" in lat else float("nan"),
           "throughput": num(lat[max(lat, key=int)][2]) if lat else float("nan")}
    for d in PPLS:
        row["ppl_" + d] = num(r["ppl"][d][0]) if d in r.get("ppl", {}) else float("nan")
    for t in TASKS:
        row["acc_" + t] = num(zs[t][4]) if t in zs else float("nan")
    return row


def check_run_file(r):
    name = r["run_id"]
    with h5py.File(os.path.join(OUT, name + ".h5"), "r") as f:
        a = f.attrs
        keys = {"run_id", "experiment", "label", "config", "model", "method", "criterion", "granularity", "ratio",
                "native", "num_blocks", "seed", "status", "prunebench_version", "git_revision", "hardware",
                "started", "finished", "seconds"} | ({"error"} if r.get("error") else set())
        check(set(a.keys()) == keys, f"{name}: root attributes {sorted(a.keys())}")
        for k, v in [("run_id", r["run_id"]), ("experiment", r["experiment"]), ("label", r["label"]),
                     ("config", r["config"]), ("model", r["model"]), ("method", r["method"]),
                     ("criterion", r["criterion"] or ""), ("granularity", r["granularity"] or ""),
                     ("status", "failed" if r.get("error") else "done")] + \
                ([("error", r["error"])] if r.get("error") else []):
            check(type(a[k]) is str and a[k] == v, f"{name}: attribute {k} = {a[k]!r} (want str {v!r})")
        for k in ["prunebench_version", "git_revision", "hardware", "started", "finished"]:
            check(type(a[k]) is str, f"{name}: attribute {k} is {type(a[k])}")
        check(re.match(r"^\d+\.\d+\.\d+$", a["prunebench_version"]) is not None, f"{name}: version {a['prunebench_version']}")
        check(re.match(r"^([0-9a-f]{7,40}|unknown)$", a["git_revision"]) is not None, f"{name}: git {a['git_revision']}")
        check(re.match(r"^.+; \d+ threads$", a["hardware"]) is not None, f"{name}: hardware {a['hardware']!r}")
        check(ISO.match(a["started"]) and ISO.match(a["finished"]) and a["started"] <= a["finished"],
              f"{name}: times {a['started']} {a['finished']}")
        # seconds is a monotonic duration of a run that writes a few groups: well under a minute
        check(isinstance(a["seconds"], np.float64) and 0 <= a["seconds"] < 60, f"{name}: seconds {a['seconds']!r}")
        for k in ["ratio", "native"]:
            check(isinstance(a[k], np.float64) and same(float(a[k]), num(r[k])), f"{name}: {k} {a[k]!r}")
        for k in ["num_blocks", "seed"]:
            check(isinstance(a[k], np.int64) and int(a[k]) == int(r[k]), f"{name}: {k} {a[k]!r}")

        groups = {k for k in ["params", "structure", "ppl", "zeroshot", "latency", "importance", "training"]
                  if k in r} | ({"zeroshot"} if "zeroshot_mean" in r else set())
        check(set(f.keys()) == groups, f"{name}: groups {sorted(f.keys())}, want {sorted(groups)}")

        if "params" in r:
            g = f["params"].attrs
            for k, v in zip(["params_before", "params_after", "params_before_no_embed", "params_after_no_embed"],
                            r["params"]):
                check(isinstance(g[k], np.int64) and int(g[k]) == int(v), f"{name}: params {k} {g[k]!r}")
        if "structure" in r:
            s, g = r["structure"], f["structure"]
            check(set(g.keys()) == {"n_heads", "n_kv_heads", "ffn_dim", "removed", "kept_layers"},
                  f"{name}: structure {list(g.keys())}")
            for k, v in [("n_heads", s["n_heads"]), ("n_kv_heads", s["n_kv"]), ("ffn_dim", s["ffn"])]:
                check(g[k].dtype == np.int32 and g[k][()].tolist() == v, f"{name}: structure/{k}")
            rm = g["removed"]
            check(rm.dtype == np.int32 and rm.shape == (len(s["removed"]), 3) and rm[()].tolist() == s["removed"],
                  f"{name}: structure/removed {rm[()].tolist()}")
            check(rm.attrs["kinds"] == "0 block, 1 attn, 2 mlp, 3 head, 4 channel", f"{name}: removed kinds")
            blocks = {l for l, k, _ in s["removed"] if k == 0}
            kept = [l for l in range(len(s["n_heads"]) + len(blocks)) if l not in blocks]
            check(g["kept_layers"].dtype == np.int32 and g["kept_layers"][()].tolist() == kept,
                  f"{name}: kept_layers {g['kept_layers'][()].tolist()} want {kept}")
        for d, v in r.get("ppl", {}).items():
            g = f["ppl"][d.replace("/", "_")].attrs   # a file path's '/' becomes '_'
            for k, x in zip(["ppl", "nll_mean", "nll_stderr"], v[:3]):
                check(isinstance(g[k], np.float64) and same(float(g[k]), num(x)), f"{name}: ppl/{d} {k}")
            for k, x in zip(["tokens", "windows", "seq_len"], v[3:]):
                check(isinstance(g[k], np.int64) and int(g[k]) == int(x), f"{name}: ppl/{d} {k}")
        if "ppl" in r:
            check(set(f["ppl"].keys()) == {d.replace("/", "_") for d in r["ppl"]}, f"{name}: ppl sets")
        for t, v in r.get("zeroshot", {}).items():
            g = f["zeroshot"][t].attrs
            for k, x in zip(["acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "headline"], v[:5]):
                check(isinstance(g[k], np.float64) and same(float(g[k]), num(x)), f"{name}: zeroshot/{t} {k}")
            check(isinstance(g["n"], np.int64) and int(g["n"]) == v[5], f"{name}: zeroshot/{t} n")
        if "zeroshot" in f:
            want = num(r["zeroshot_mean"]) if "zeroshot_mean" in r else None
            got = f["zeroshot"].attrs.get("mean")
            check((got is None and want is None) or (isinstance(got, np.float64) and same(float(got), want)),
                  f"{name}: zeroshot mean {got!r}")
        if "latency" in r:
            check(set(f["latency"].keys()) == {"batch_" + b for b in r["latency"]}, f"{name}: latency batches")
            for b, v in r["latency"].items():
                g = f["latency"]["batch_" + b].attrs
                for k, x in zip(["prefill_ms", "decode_ms_per_token", "tokens_per_s"], v[:3]):
                    check(isinstance(g[k], np.float64) and same(float(g[k]), num(x)), f"{name}: latency {b} {k}")
                check(isinstance(g["peak_bytes"], np.int64) and int(g["peak_bytes"]) == int(v[3]), f"{name}: peak")
        if "importance" in r:
            i = r["importance"]
            d = f["importance"]["scores"]
            shape = (i["rows"],) if i["cols"] == 1 else (i["rows"], i["cols"])
            want = np.array([num(x) for x in i["scores"]]).reshape(shape)
            check(d.dtype == np.float64 and d.shape == shape and np.array_equal(d[()], want, equal_nan=True),
                  f"{name}: importance {d.shape}")
            gr = i.get("granularity")
            check(f["importance"].attrs.get("granularity") == gr and d.attrs.get("granularity") == gr,
                  f"{name}: importance granularity {dict(f['importance'].attrs)}")
            c = i.get("channels")
            check(("channels" in f["importance"]) == (c is not None), f"{name}: importance tables")
            if c is not None and "channels" in f["importance"]:
                dc = f["importance"]["channels"]
                want = np.array([num(x) for x in c["scores"]]).reshape(c["rows"], c["cols"])
                check(dc.shape == want.shape and np.array_equal(dc[()], want, equal_nan=True)
                      and dc.attrs.get("granularity") == "channel", f"{name}: importance channels {dc.shape}")
        if "training" in r:
            t, g = r["training"], f["training"]
            check(g["step"].dtype == np.int64 and g["step"][()].tolist() == t["step"], f"{name}: training step")
            for k in ["loss", "lr", "grad_norm", "val_loss"]:
                want = np.array([num(x) for x in t[k]]) if t.get(k) else np.full(len(t["step"]), np.nan)
                check(g[k].dtype == np.float64 and np.array_equal(g[k][()], want, equal_nan=True),
                      f"{name}: training {k}")


def check_index():
    rows = sorted((expected_row(r) for r in RUNS), key=lambda x: x["run_id"])
    with h5py.File(os.path.join(OUT, "index.h5"), "r") as f:
        check(list(f.keys()) == ["summary"], f"index objects {list(f.keys())}")
        s = f["summary"]
        arr = s[:]
    check(list(arr.dtype.names) == COLUMNS, f"columns {arr.dtype.names}")
    for c in COLUMNS:
        kind = arr.dtype[c]
        if isinstance(rows[0][c], str):
            check(kind.kind == "S", f"column {c} is {kind}")
        elif c == "num_blocks":
            check(kind == np.int32, f"column {c} is {kind}")
        elif c in ("seed", "params_before", "params_after", "params_after_no_embed"):
            check(kind == np.int64, f"column {c} is {kind}")
        else:
            check(kind == np.float64, f"column {c} is {kind}")
    check(len(arr) == len(RUNS), f"{len(arr)} rows")
    for got, want in zip(arr, rows):
        for c in COLUMNS:
            v = got[c]
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            elif arr.dtype[c].kind == "f":
                v = float(v)
            else:
                v = int(v)
            check(same(v, want[c]), f"index {want['run_id']} {c}: {v!r} want {want[c]!r}")
    return rows


def check_readme(rows):
    """The README's three lines, run as written (path replaced), give one row per run."""
    text = open(os.path.join(SRC, "results", "README.md"), encoding="utf-8").read()
    m = re.search(r"```python\n(import h5py, pandas as pd\n.*?)```", text, re.S)
    check(m is not None, "results/README.md has no ```python block starting with the import line")
    if m is None:
        return
    code = m.group(1)
    check(len([l for l in code.splitlines() if l.strip() and not l.startswith("#")]) == 3,
          f"README snippet is not three lines:\n{code}")
    try:
        import pandas  # noqa: F401
    except ImportError:
        print("NOTE: pandas is not installed (python3-pandas); the README lines were not run, "
              "numpy record checks only")
        return
    ns = {}
    exec(code.replace("results/quickstart/index.h5", os.path.join(OUT, "index.h5")), ns)
    df = ns["df"]
    check(df.shape == (len(RUNS), len(COLUMNS)) and list(df.columns) == COLUMNS, f"DataFrame shape {df.shape}")
    check(df["run_id"].tolist() == [r["run_id"] for r in rows], f"DataFrame run_id {df['run_id'].tolist()}")
    check(all(type(x) is str for x in df["method"]), "DataFrame strings not decoded")
    check(df["seed"].dtype == np.int64 and int(df["seed"].max()) == BIG_SEED, "DataFrame seed")
    d = df.set_index("run_id")
    check(d.loc["0a1b2c3d4e5f", "ppl_wikitext2"] == 20.25 and math.isnan(d.loc["000000000000", "ratio"]),
          "DataFrame values")
    check(d.loc["ffffffffffff", "status"] == "failed" and d.loc["000000000000", "criterion"] == "",
          "DataFrame status / empty string")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    spec = os.path.join(OUT, "spec.json")
    with open(spec, "w") as f:
        json.dump({"runs": RUNS}, f, ensure_ascii=False)
    res = subprocess.run([GEN, spec, os.path.join(OUT)], capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stdout, res.stderr)
        sys.exit(1)
    check(res.stdout.strip() == str(len(RUNS)), f"generator printed {res.stdout!r}")
    files = sorted(os.listdir(OUT))
    check(files == sorted([r["run_id"] + ".h5" for r in RUNS] + ["index.h5", "spec.json"]), f"files {files}")
    for r in RUNS:
        check_run_file(r)
    rows = check_index()
    check_readme(rows)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("exp_results_h5py: ok")


main()

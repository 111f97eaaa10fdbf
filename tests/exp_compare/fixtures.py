"""fixtures.py — experiment folders for the compare and plot tests, written with h5py in the
layout core/exp/results.h documents (index.h5 with a compound `summary` table; run files with
root attributes and /importance/scores), independently of the C writer, so that the readers
are tested against the documented format rather than against themselves.

make_experiment(dir, strings="fixed"|"vlen") writes one folder and returns its runs as dicts
(index columns; accuracies as fractions, as the index stores them)."""
import math
import os

import h5py
import numpy as np

NAN = float("nan")
TASKS = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
STR_COLS = ("run_id", "model", "method", "criterion", "granularity")
COLUMNS = ([(c, "str") for c in STR_COLS] + [("ratio", "f8"), ("native", "f8"), ("num_blocks", "i4"), ("seed", "i8"),
           ("status", "str"), ("params_before", "i8"), ("params_after", "i8"), ("params_after_no_embed", "i8")] +
           [(f"ppl_{d}", "f8") for d in ("wikitext2", "ptb", "c4", "tinystories")] +
           [(f"acc_{t}", "f8") for t in TASKS] + [("acc_mean", "f8"), ("latency_ms", "f8"), ("throughput", "f8")])


def _accs(base, drop):
    return {f"acc_{t}": round(base[i] - drop, 4) for i, t in enumerate(TASKS)}


def runs_for(model="tiny", seed=0, offset=0.0):
    """The runs of one model: dense, depth (taylor+, ppl) and width (flap, wanda-sp) at 2-3 ratios, one
    failed run. offset shifts every perplexity (a second model or experiment)."""
    dense_acc = (0.7318, 0.7835, 0.7299, 0.6701, 0.6745, 0.4138, 0.4240)
    P = 6_738_415_616
    rows = []

    def add(run_id, method, crit, gran, ratio, wt2, ptb, drop, lat, tput, status="done", params_after=None, num_blocks=-1):
        r = {"run_id": run_id, "model": model, "method": method, "criterion": crit, "granularity": gran,
             "ratio": ratio, "native": NAN, "num_blocks": num_blocks, "seed": seed, "status": status,
             "params_before": P, "params_after": params_after if params_after is not None else
             (P if method == "dense" else int(P * (1 - ratio))),
             "params_after_no_embed": -1, "ppl_wikitext2": wt2 + offset if not math.isnan(wt2) else NAN,
             "ppl_ptb": ptb + offset if not math.isnan(ptb) else NAN, "ppl_c4": NAN, "ppl_tinystories": NAN,
             "latency_ms": lat, "throughput": tput}
        r.update(_accs(dense_acc, drop) if status == "done" else {f"acc_{t}": NAN for t in TASKS})
        accs = [r[f"acc_{t}"] for t in TASKS]
        r["acc_mean"] = 100 * sum(accs) / len(accs) if status == "done" else NAN
        r["params_after_no_embed"] = r["params_after"] - 131_072_000 if status == "done" else -1
        rows.append(r)

    s = f"{model[:2]}{seed}"
    add(f"{s}dense000001", "dense", "", "", NAN, 12.62, 22.13, 0.0, 20.0, 50.0)
    add(f"{s}taylor00020", "taylor+", "taylor", "block", 0.20, 17.66, 30.75, 0.020, 16.0, 62.5)
    add(f"{s}taylor00035", "taylor+", "taylor", "block", 0.35, 33.21, 58.02, 0.060, 13.0, 76.9)
    add(f"{s}ppl0000020a", "ppl", "ppl", "block", 0.20, 17.10, 29.90, 0.030, 16.1, 62.1)
    add(f"{s}ppl0000035a", "ppl", "ppl", "block", 0.35, 23.40, 41.00, 0.080, 13.2, 75.8)
    add(f"{s}flap0000020", "flap", "wifv", "channel", 0.20, 14.62, 26.00, 0.012, 19.5, 51.3)
    add(f"{s}flap0000035", "flap", "wifv", "channel", 0.35, 19.80, 35.10, 0.050, 19.0, 52.6)
    add(f"{s}flap0000050", "flap", "wifv", "channel", 0.50, 31.80, 70.20, 0.120, 18.1, 55.2)
    add(f"{s}wanda000020", "wanda-sp", "wanda", "head", 0.20, 22.12, 38.40, 0.015, NAN, NAN)
    add(f"{s}llmp0failed", "llm-pruner", "param_first", "channel", 0.20, NAN, NAN, 0.0, NAN, NAN, status="failed")
    return rows


def write_index(path, rows, strings="fixed"):
    fields = []
    for name, kind in COLUMNS:
        if kind == "str":
            if strings == "fixed":
                width = max([len(r[name].encode()) for r in rows] + [1])
                fields.append((name, f"S{width}"))
            else:
                fields.append((name, h5py.string_dtype("utf-8")))
        else:
            fields.append((name, kind))
    arr = np.zeros(len(rows), dtype=fields)
    for i, r in enumerate(rows):
        for name, kind in COLUMNS:
            v = r[name]
            arr[i][name] = v.encode() if kind == "str" and strings == "fixed" else v
    with h5py.File(path, "w") as f:
        f.create_dataset("summary", data=arr)


def write_run_file(d, r, experiment, layers=8):
    """The run file: identity attributes, and importance scores (per layer for depth, per layer x
    unit padded with NaN/-1 for width)."""
    label = f"{r['model']}/{r['method']}/ratio={r['ratio']:g}/seed={r['seed']}" if r["method"] != "dense" else \
        f"{r['model']}/dense/seed={r['seed']}"
    with h5py.File(os.path.join(d, r["run_id"] + ".h5"), "w") as f:
        for k in ("run_id", "model", "method", "criterion", "granularity", "status"):
            f.attrs[k] = r[k]
        f.attrs["label"] = label
        f.attrs["experiment"] = experiment
        if r["status"] != "done":
            f.attrs["error"] = "calibration: out of memory while scoring layer 3"
        if r["status"] == "done" and r["method"] != "dense":
            rng = np.random.default_rng(sum(r["run_id"].encode()))   # a different draw per run
            if r["granularity"] == "block":
                s = np.linspace(1.0, 3.0, layers) + rng.normal(0, 0.2, layers)
                s[0] = 10.0   # the first block matters most, as in the papers
            else:
                s = rng.uniform(0, 1, (layers, 6))
                s[::2, 4:] = np.nan   # pruned layers are narrower: padding
                s[1, 5] = -1.0
            f.create_group("importance").create_dataset("scores", data=s)
    return label


def make_experiment(d, strings="fixed", models=(("tiny", 0.0),), published=None, run_files=True):
    os.makedirs(d, exist_ok=True)
    rows = []
    for model, offset in models:
        rows += runs_for(model, offset=offset)
    rows.sort(key=lambda r: r["run_id"])   # the index is sorted by run_id
    write_index(os.path.join(d, "index.h5"), rows, strings)
    if run_files:
        for r in rows:
            r["label"] = write_run_file(d, r, os.path.basename(d))
    if published is not None:
        with open(os.path.join(d, "published.yaml"), "w") as f:
            f.write(published)
    return rows


PUBLISHED = """\
- {model: tiny, method: dense, wikitext2: 12.62, ptb: 22.14, boolq: 73.18, piqa: 78.35, hellaswag: 72.99,
   winogrande: 67.01, arc_easy: 67.45, arc_challenge: 41.38, openbookqa: 42.40, mean: 63.25}
- model: tiny
  method: taylor+
  ratio: 20%
  wikitext2: 20.21
  ptb: 32.36
  boolq: 75.78
  piqa: 75.73
  hellaswag: 71.55
  winogrande: 69.14
  arc_easy: 69.87
  arc_challenge: 41.55
  openbookqa: 40.80
  avg: 63.49
  note: Shortened LLaMA 4.1
- {model: LLaMA-7B, method: flap, ratio: 0.2, wikitext2: 14.62, params: 5.47B}
"""

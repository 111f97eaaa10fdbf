#!/usr/bin/env python3
"""agree7b.py — issue 7's acceptance check at full size: a 7B-shaped random model (make_model.py)
gives the same logits and the same `prunebench ppl` on WikiText-2 on the CUDA backend as on the
CPU backend, on a window budget the CPU can afford.

    agree7b.py MODEL_DIR --bin PRUNEBENCH --dump PB_DUMP --data-dir DIR --out FILE.json
               [--dtype bf16] [--windows 4] [--tokens 128] [--budget-s S]

1. logits: pb_dump on 1 x --tokens random ids, CPU (fp32) and CUDA (--dtype). Relative error =
   max |cuda - cpu| / max |cpu|, held to 1.5 sqrt(2 G) u, the estimate of
   tests/cuda/test_cuda_agree.py (G = 7 L + 2 GEMMs behind the logits, u = the dtype's unit
   roundoff: both GEMM operands rounded, errors adding in quadrature along the residual
   stream); for bf16 and 32 layers that is 0.12. Also measured: the largest error of the
   log-probabilities, dlp_max.
2. ppl: `prunebench ppl --dataset wikitext2 --seq-len 128 --max-windows W` on both backends.
   The mean NLL is a mean of -log p, so it moves by at most dlp_max; tolerance 2 dlp_max (the
   factor 2 because the ppl windows are other inputs than step 1's), as in test_cuda_agree.py.
Prints one line per check and writes the figures to --out; exit 1 when a check fails."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

U = {"f32": 2.0 ** -24, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}
SAFETY = 2.0


def run(cmd, timeout):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1, timeout))
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout:.0f} s", time.time() - t0
    return p.returncode, p.stdout, p.stderr.strip(), time.time() - t0


def log_softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bf16", choices=sorted(U))
    ap.add_argument("--device", default="cuda", help="cpu only for dry runs (compares the CPU with itself)")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--budget-s", type=float, default=600)
    a = ap.parse_args()
    t0 = time.time()
    left = lambda: a.budget_s - (time.time() - t0)   # noqa: E731
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    L, V = cfg["num_hidden_layers"], cfg["vocab_size"]
    G = 7 * L + 2
    # f32 differs only by summation order (~1e-6), which this rounding model does not describe
    tol_rel = max(1.5 * math.sqrt(2 * G) * U[a.dtype], 1e-5)
    res = {"model": a.model, "dtype": a.dtype, "layers": L, "tol_rel": tol_rel, "checks": []}
    fails = 0

    def save():
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)

    def check(ok, line):
        nonlocal fails
        print(("ok   " if ok else "FAIL ") + line, flush=True)
        res["checks"].append({"ok": bool(ok), "what": line})
        fails += not ok
        save()

    dev = ["--device", a.device, "--dtype", a.dtype] if a.device != "cpu" else []
    tmp = os.path.dirname(os.path.abspath(a.out))
    ids = np.random.default_rng(5).integers(3, V, size=(1, a.tokens))
    ip = os.path.join(tmp, "agree7b.ids")
    with open(ip, "w") as f:
        f.write(f"1 {a.tokens}\n" + " ".join(map(str, ids[0])) + "\n")
    lg = {}
    for name, extra in (("cpu", []), ("cuda", dev)):
        op = os.path.join(tmp, f"agree7b.{name}.f32")
        if os.path.exists(op):
            os.remove(op)
        rc, out, err, secs = run([a.dump, a.model, *extra, "--logits", ip, op], left())
        res[f"logits_{name}_s"] = secs
        if rc != 0:
            check(False, f"7B logits {name}: pb_dump failed ({rc}): {err.splitlines()[-1] if err else ''}")
            return 1
        lg[name] = np.fromfile(op, "<f4").astype(np.float64).reshape(a.tokens, V)
        os.remove(op)
    dz = lg["cuda"] - lg["cpu"]
    dlp = log_softmax(lg["cuda"]) - log_softmax(lg["cpu"])
    rel = float(np.max(np.abs(dz)) / np.max(np.abs(lg["cpu"])))
    dlp_max = float(np.max(np.abs(dlp)))
    res.update(rel=rel, dz_max=float(np.max(np.abs(dz))), dz_rms=float(np.sqrt(np.mean(dz * dz))), dlp_max=dlp_max,
               dlp_rms=float(np.sqrt(np.mean(dlp * dlp))), max_abs_logit=float(np.max(np.abs(lg["cpu"]))))
    check(rel <= tol_rel, f"7B logits {a.device} {a.dtype}: relative error {rel:.2e} (tolerance 1.5 sqrt(2G) u = "
          f"{tol_rel:.2e}, G = {G}); log-prob error max {dlp_max:.2e}")

    ppl = {}
    for name, extra in (("cpu", []), ("cuda", dev)):
        rc, out, err, secs = run([a.bin, "ppl", a.model, "--dataset", "wikitext2", "--seq-len", "128", "--max-windows",
                                  str(a.windows), "--data-dir", a.data_dir, "--json", *extra], left())
        res[f"ppl_{name}_s"] = secs
        if rc != 0:
            check(False, f"7B ppl {name} failed ({rc}): {err.splitlines()[-1] if err else ''}")
            return 1
        ppl[name] = json.loads(out.strip().splitlines()[-1])
    d = abs(ppl["cuda"]["nll_mean"] - ppl["cpu"]["nll_mean"])
    tol = SAFETY * dlp_max
    res["ppl"] = {"cpu": ppl["cpu"], "cuda": ppl["cuda"], "diff": d, "tol": tol}
    check(d <= tol and ppl["cuda"]["tokens"] == ppl["cpu"]["tokens"],
          f"7B ppl wikitext2 ({a.windows} windows of 128) {a.device} {a.dtype}: {ppl['cuda']['ppl']:.4f} vs cpu "
          f"{ppl['cpu']['ppl']:.4f} (nll |diff| {d:.2e}, tolerance 2 dlp_max = {tol:.2e})")
    res["seconds"] = time.time() - t0
    save()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""pb_bench.py — prunebench's side of the GPU benchmarks, on the settings hf_reference.py uses:

    pb_bench.py MODEL_DIR --bin PRUNEBENCH --data-dir DIR --out FILE.json [--device cuda]
        [--dtype bf16] [--score-seq 128,2048] [--score-tokens 131072] [--score-batch-tokens 16384]
        [--gen-groups "1,64;256"] [--prompt-len 128] [--gen-len 128] [--reps 3] [--warmup 1]
        [--budget-s SECONDS]

  score  `prunebench ppl MODEL --dataset wikitext2 --seq-len T --max-windows N --batch B --json`
         with N = --score-tokens / T windows and B = --score-batch-tokens / T (the same token
         budget and tokens per forward as the reference). positions_per_s = windows * T / the
         `seconds` ppl reports (its scoring loop: tokenisation and model load excluded, the first
         batch's warm-up included); wall_s (the whole command, load included) is kept too.
  gen    `prunebench bench MODEL --batch LIST --prompt-len P --gen-len G --reps R --warmup W
         --json`, one command per ';'-separated group, so that a batch that does not fit (the
         fp32 KV cache of a dense 7B at batch 256 needs 69 GB) fails alone.
Every command's line, exit code, wall time and last stderr line are recorded; the JSON file is
rewritten after each command, and a command that would start past --budget-s is skipped (and
listed) rather than started."""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--score-seq", default="128,2048")
    ap.add_argument("--score-tokens", type=int, default=131072)
    ap.add_argument("--score-batch-tokens", type=int, default=16384)
    ap.add_argument("--gen-groups", default="1,64;256")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--gen-len", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--budget-s", type=float, default=0)
    a = ap.parse_args()
    t0 = time.time()
    dev = ["--device", a.device] + (["--dtype", a.dtype] if a.device != "cpu" else [])
    res = {"stack": "prunebench", "model": os.path.abspath(a.model), "name": os.path.basename(a.model.rstrip("/")),
           "device": a.device, "dtype": a.dtype if a.device != "cpu" else "f32", "score": [], "gen": [],
           "commands": [], "skipped": []}

    def save():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
        os.replace(tmp, a.out)

    def run(what, args):
        left = a.budget_s - (time.time() - t0) if a.budget_s else 3600
        if left < 5:
            res["skipped"].append(what)
            save()
            print(f"pb_bench: {what} skipped: past --budget-s {a.budget_s:g}", file=sys.stderr, flush=True)
            return None
        cmd = [a.bin, *args]
        t1 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = 124, "", f"killed at the budget ({left:.0f} s)"
        wall = time.time() - t1
        lines = [x for x in err.splitlines() if x.strip()]
        rec = {"what": what, "cmd": " ".join(cmd), "rc": rc, "wall_s": wall, "stderr_last": lines[-1] if lines else ""}
        res["commands"].append(rec)
        save()
        print(f"pb_bench: {what}: rc {rc}, {wall:.1f} s{'' if rc == 0 else ': ' + rec['stderr_last']}",
              file=sys.stderr, flush=True)
        if rc != 0:
            return None
        try:
            return json.loads(out.strip().splitlines()[-1]), wall
        except (ValueError, IndexError):
            rec["error"] = "no JSON on stdout"
            return None

    for T in [int(x) for x in a.score_seq.split(",") if x.strip()]:
        n = max(1, a.score_tokens // T)
        B = max(1, a.score_batch_tokens // T)
        r = run(f"score T={T}", ["ppl", a.model, "--dataset", "wikitext2", "--seq-len", str(T), "--max-windows", str(n),
                                 "--batch", str(B), "--data-dir", a.data_dir, "--json", *dev])
        if r:
            j, wall = r
            res["score"].append({"seq_len": T, "batch": B, "windows": j["windows"], "positions": j["windows"] * T,
                                 "seconds": j["seconds"], "positions_per_s": j["windows"] * T / j["seconds"],
                                 "wall_s": wall, "nll_mean": j["nll_mean"], "ppl": j["ppl"]})
        else:
            res["score"].append({"seq_len": T, "batch": B, "error": res["commands"][-1]["stderr_last"]
                                 if res["commands"] and res["commands"][-1]["what"] == f"score T={T}" else "skipped"})
        save()
    for group in [g for g in a.gen_groups.split(";") if g.strip()]:
        r = run(f"bench batch {group}", ["bench", a.model, "--batch", group, "--prompt-len", str(a.prompt_len),
                                         "--gen-len", str(a.gen_len), "--reps", str(a.reps), "--warmup",
                                         str(a.warmup), "--json", *dev])
        if r:
            for rec in r[0]:
                rec["wall_s_command"] = r[1]
                res["gen"].append(rec)
        else:
            last = res["commands"][-1] if res["commands"] and res["commands"][-1]["what"] == f"bench batch {group}" \
                else {"stderr_last": "skipped"}
            for b in group.split(","):
                res["gen"].append({"batch": int(b), "error": last["stderr_last"]})
        save()
    res["seconds"] = time.time() - t0
    save()


if __name__ == "__main__":
    main()

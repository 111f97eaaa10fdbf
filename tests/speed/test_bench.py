"""test_bench.py — `prunebench bench` end to end on the real stories260K model.

Checks the JSON records (fields, plausible and self-consistent values, the exact KV cache
size), the text table, that the benchmark's greedy tokens are those of `prunebench generate`
and of llama2.c's reference output for the same prompt ids, and the error contract (one
stderr line; exit 2 for usage errors, 1 for a configuration the model cannot run).

argv[1]: the speed_gen_ids helper (runs one configuration through pb_speed_run, the function
the command calls, and prints its prompts and tokens)."""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.environ.get("PB_TMP", tempfile.gettempdir())
GEN_IDS = sys.argv[1]
MODEL_DIR = os.path.join(SHARED, "models", "stories260K")
GGUF = os.path.join(MODEL_DIR, "stories260K.gguf")

# stories260K's shape (shared/DESIGN.md, and the GGUF header): written here, not read from
# our loader, so that the KV cache formula is checked against an independent source.
LAYERS, KV_HEADS, HEAD_DIM, CONTEXT = 5, 4, 8, 2048

FIELDS = {"batch", "prompt_len", "gen_len", "reps", "warmup", "prefill_s", "prefill_s_std", "decode_ms_per_token",
          "decode_ms_per_token_std", "total_s", "total_s_std", "tokens_per_s", "tokens_per_s_std", "peak_rss_bytes",
          "peak_rss_scope", "weights_bytes", "kv_cache_bytes", "device", "threads"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, ok=True):
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if ok and p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def bench(*args, ok=True):
    return run([BIN, "bench", GGUF, *args], ok)


def test_json():
    info = json.loads(run([BIN, "info", GGUF, "--json"]).stdout)
    check(info["n_layers"] == LAYERS, f"info says {info['n_layers']} layers")
    check(all(l["n_kv_heads"] == KV_HEADS and l["head_dim"] == HEAD_DIM for l in info["layers"]), "layer shapes")
    p = bench("--batch", "1,3", "--prompt-len", "8,16", "--gen-len", "5", "--reps", "3", "--warmup", "1",
              "--seed", "5", "--threads", "1", "--json")
    recs = json.loads(p.stdout)
    check(isinstance(recs, list) and len(recs) == 4, f"4 records expected, got {p.stdout[:200]}")
    order = [(r["batch"], r["prompt_len"], r["gen_len"]) for r in recs]
    check(order == [(1, 8, 5), (1, 16, 5), (3, 8, 5), (3, 16, 5)], f"combinations {order}")
    for r in recs:
        tag = f"record {r['batch']},{r['prompt_len']},{r['gen_len']}"
        check(set(r) == FIELDS, f"{tag}: fields {sorted(set(r) ^ FIELDS)}")
        check(r["reps"] == 3 and r["warmup"] == 1 and r["device"] == "cpu" and r["threads"] == 1, f"{tag}: {r}")
        for k in ("prefill_s", "decode_ms_per_token", "total_s", "tokens_per_s"):
            check(r[k] > 0 and r[k + "_std"] >= 0, f"{tag}: {k} {r[k]} ± {r[k + '_std']}")
        # a 260K-parameter model generates 5 tokens in well under a minute, and no run is
        # faster than a nanosecond per token: bounds that catch unit mix-ups (ms vs s)
        check(r["total_s"] < 60 and r["tokens_per_s"] < 1e9, f"{tag}: implausible times {r}")
        # the same formula as the command, so only the 17-digit JSON rounding separates them
        want = r["batch"] * r["gen_len"] / r["total_s"]
        check(abs(r["tokens_per_s"] - want) <= 1e-9 * want, f"{tag}: tokens_per_s {r['tokens_per_s']} vs {want}")
        # mean total = mean prefill + (gen_len - 1) mean decode steps (means are linear)
        parts = r["prefill_s"] + r["decode_ms_per_token"] * (r["gen_len"] - 1) / 1e3
        check(abs(r["total_s"] - parts) <= 1e-9, f"{tag}: total {r['total_s']} vs parts {parts}")
        max_len = r["prompt_len"] + r["gen_len"]
        kv = 2 * LAYERS * r["batch"] * max_len * KV_HEADS * HEAD_DIM * 4
        check(r["kv_cache_bytes"] == kv, f"{tag}: kv_cache_bytes {r['kv_cache_bytes']} != {kv}")
        check(r["weights_bytes"] == 4 * info["params"], f"{tag}: weights_bytes {r['weights_bytes']}")
        check(r["peak_rss_bytes"] >= r["weights_bytes"] + r["kv_cache_bytes"],
              f"{tag}: peak RSS {r['peak_rss_bytes']} below weights + cache")
        check(r["peak_rss_bytes"] < 4 << 30, f"{tag}: peak RSS {r['peak_rss_bytes']} implausibly large")
        check(r["peak_rss_scope"] in ("config", "process"), f"{tag}: scope {r['peak_rss_scope']}")
    if sys.platform.startswith("linux"):
        check(all(r["peak_rss_scope"] == "config" for r in recs), "Linux: peak RSS should reset per configuration")


def test_text():
    p = bench("--batch", "2", "--prompt-len", "4", "--gen-len", "3,6", "--reps", "1", "--warmup", "0")
    lines = p.stdout.strip().splitlines()
    check(len(lines) == 3 and lines[0].split()[:3] == ["batch", "prompt", "gen"], f"table: {p.stdout}")
    check([l.split()[:3] for l in lines[1:]] == [["2", "4", "3"], ["2", "4", "6"]], f"rows: {lines[1:]}")


def gen_ids(gen_len, *rows):
    p = run([GEN_IDS, GGUF, str(gen_len), *[",".join(map(str, r)) for r in rows]])
    return json.loads(p.stdout)


def test_same_tokens_as_generate():
    text = os.path.join(TMP, "speed_prompt.txt")
    prompt = "Once upon a time, there was a little girl named Lily."
    with open(text, "w") as f:
        f.write(prompt)
    ids = list(map(int, run([BIN, "tokenize", GGUF, "--text", text, "--bos"]).stdout.split()))
    steps = 40
    g = json.loads(run([BIN, "generate", GGUF, "--prompt", prompt, "--steps", str(steps), "--ignore-eos",
                        "--json"]).stdout)["ids"]
    check(len(g) == steps, f"generate gave {len(g)} ids")
    other = [1] + [(i * 37 + 11) % 509 + 3 for i in range(len(ids) - 1)]  # a different prompt, same length
    out = gen_ids(steps, ids, other, ids)
    check(out["prompt"] == [ids, other, ids], "prompts used as given")
    check(out["tokens"][0] == g, f"bench tokens {out['tokens'][0]} != generate {g}")
    check(out["tokens"][2] == g, "row 2 (same prompt as row 0) differs from generate")
    alone = gen_ids(steps, other)["tokens"][0]
    check(out["tokens"][1] == alone, "row 1 differs from its run at batch 1")
    # llama2.c's own greedy output from BOS (stored beside the model)
    ref_path = os.path.join(MODEL_DIR, "stories260K.greedy_ids.txt")
    ref = list(map(int, open(ref_path).read().split()))
    check(ref[0] == 1, "reference starts with BOS")
    got = gen_ids(len(ref) - 1, [1])["tokens"][0]
    check(got == ref[1:], f"greedy from BOS differs from llama2.c at step "
          f"{next((i for i, (a, b) in enumerate(zip(got, ref[1:])) if a != b), None)}")


def test_random_prompts():
    out = run([GEN_IDS, GGUF, "3", "--random", "4", "64", "11"])
    a = json.loads(out.stdout)["prompt"]
    flat = [i for row in a for i in row]
    check(len(a) == 4 and all(len(r) == 64 for r in a), "random prompt shape")
    check(all(0 <= i < 512 and i not in (1, 2) for i in flat), "random prompt ids in range, no BOS (1) / EOS (2)")
    check(len(set(flat)) > 100, f"random prompts use only {len(set(flat))} distinct ids")
    b = json.loads(run([GEN_IDS, GGUF, "3", "--random", "4", "64", "11"]).stdout)["prompt"]
    check(a == b, "same seed, same prompts")


def test_errors():
    cases = [
        (["--batch", "0"], 2, "usage error"),
        (["--batch", "1,,2"], 2, "item 2 is empty"),
        (["--batch", "x"], 2, "usage error"),
        (["--prompt-len", "0"], 2, "usage error"),
        (["--reps", "0"], 2, "usage error"),
        (["--warmup", "-1"], 2, "usage error"),
        (["--prompt-len", "8", "--gen-len", str(CONTEXT)], 1, f"context of {CONTEXT}"),
        (["--batch", "1,2", "--prompt-len", "2000", "--gen-len", "4,49"], 1, f"context of {CONTEXT}"),
    ]
    for args, code, needle in cases:
        p = bench(*args, ok=False)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == code, f"{args}: exit {p.returncode}, want {code}")
        check(len(lines) == 1, f"{args}: stderr has {len(lines)} lines: {p.stderr!r}")
        prefix = "prunebench bench: usage error:" if code == 2 else "prunebench: error:"
        check(lines and lines[0].startswith(prefix) and needle in lines[0], f"{args}: {p.stderr!r}")
        check(p.stdout == "", f"{args}: ran before failing: {p.stdout!r}")
    p = run([BIN, "bench", os.path.join(TMP, "no_such_model.gguf")], ok=False)
    check(p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, f"missing model: {p.returncode} {p.stderr!r}")


def main():
    if not os.path.exists(GGUF):
        print(f"SKIP: {GGUF} not found; set PB_SHARED")
        return 77
    test_json()
    test_text()
    test_same_tokens_as_generate()
    test_random_prompts()
    test_errors()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("speed_bench_cli: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

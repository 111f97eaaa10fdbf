"""test_prune_cli.py — `prunebench prune` and `importance` end to end on stories260K.

1. Every method writes a model that `info`, `score`, `ppl` and `zeroshot` load and run; the
   JSON counts agree with `info` on the written model.
2. A depth-pruned model's folder is a standard Hugging Face LLaMA folder: no
   prunebench_layers, and transformers' LlamaForCausalLM loads it and gives our logits.
3. `--dry-run` on a folder holding only a LLaMA-7B-shaped config.json gives LLM-Pruner's
   5,422,977,024 parameters (ratio 0.25 on layers 4..29) and plans depth pruning's counts.
4. Bad input: a ratio outside [0, 1), a ratio that would remove a protected block, a layer
   range outside the model, an unknown method or criterion, missing calibration: one line,
   exit 1, and nothing written.

usage: test_prune_cli.py PB_DUMP      Exit 77 (skip) without ../shared."""
import json
import os
import shutil
import subprocess
import sys

SHARED = os.environ.get("PB_SHARED", "")
BIN = os.environ.get("PB_BIN", "prunebench")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_cli")
MODEL = os.path.join(SHARED, "models", "stories260K", "stories260K.gguf")
TOK = os.path.join(SHARED, "models", "stories260K", "tok512.bin")
DATA = os.path.join(SHARED, "data")
CALIB = ["--calib", "tinystories", "--data-dir", DATA, "--calib-samples", "8", "--calib-seq-len", "64",
         "--calib-sampling", "contiguous"]
failures = 0


def check(ok, msg):
    global failures
    if not ok:
        failures += 1
        print("FAIL: " + msg, file=sys.stderr)
    return ok


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def prune(name, *args):
    out = os.path.join(TMP, name)
    r = run("prune", MODEL, *args, "--out", out, "--json", "--threads", 2)
    if not check(r.returncode == 0, f"prune {name}: {r.stderr.strip()}"):
        return None, out
    return json.loads(r.stdout), out


def loads_everywhere(name, res, out):
    r = run("info", out, "--json")
    if not check(r.returncode == 0, f"{name}: info: {r.stderr.strip()}"):
        return
    info = json.loads(r.stdout)
    check(info["params"] == res["params_after"], f"{name}: info says {info['params']} params, prune said "
          f"{res['params_after']}")
    check(len(info["layers"]) == len(res["layers"]), f"{name}: layer count differs")
    r = run("ppl", out, "--tokenizer", TOK, "--dataset", "tinystories", "--data-dir", DATA, "--max-windows", 8,
            "--json", "--threads", 2)
    ppl = json.loads(r.stdout)["ppl"] if r.returncode == 0 else float("nan")
    check(r.returncode == 0 and ppl == ppl and ppl < 1e6, f"{name}: ppl: {r.stderr.strip()} {ppl}")
    r = run("zeroshot", out, "--tokenizer", TOK, "--tasks", "piqa", "--data-dir", DATA, "--limit", 20, "--json",
            "--threads", 2)
    check(r.returncode == 0, f"{name}: zeroshot: {r.stderr.strip()}")
    ids = os.path.join(TMP, "ids.txt")
    with open(ids, "w") as f:
        f.write("1 403 407 261 378 325")
    r = run("score", out, "--tokenizer", TOK, "--ids", ids, "--json")
    check(r.returncode == 0, f"{name}: score: {r.stderr.strip()}")
    print(f"  {name:28s} {res['params_before']} -> {res['params_after']} params, TinyStories PPL {ppl:.3f}")


def test_methods():
    cases = [
        ("depth_magnitude", ["--method", "depth", "--criterion", "magnitude", "--num-blocks", 1]),
        ("depth_taylor_plus", ["--method", "depth", "--criterion", "taylor", "--num-blocks", 1, "--protect-first", 1,
                               "--protect-last", 1, *CALIB]),
        ("depth_ppl_modules", ["--method", "depth", "--criterion", "ppl", "--granularity", "module", "--num-blocks", 2,
                               *CALIB]),
        ("llm_pruner", ["--method", "llm-pruner", "--ratio", 0.2, *CALIB]),
        ("wanda_sp", ["--method", "wanda-sp", "--ratio", 0.2, *CALIB]),
        ("flap", ["--method", "flap", "--ratio", 0.2, *CALIB]),
        ("magnitude_l2", ["--method", "magnitude", "--ratio", 0.2]),
        ("random", ["--method", "random", "--ratio", 0.2, "--seed", 3]),
    ]
    for name, args in cases:
        res, out = prune(name, *args)
        if res:
            check(res["params_after"] < res["params_before"] and res["removed"], f"{name}: nothing removed")
            loads_everywhere(name, res, out)
    return os.path.join(TMP, "depth_magnitude")


def test_depth_is_hf(dump, out):
    cfg = json.load(open(os.path.join(out, "config.json")))
    check("prunebench_layers" not in cfg and cfg["num_hidden_layers"] == 4, f"depth-pruned config: {cfg}")
    try:
        import numpy as np
        import torch
        from transformers import LlamaForCausalLM
    except ImportError:
        print("  (transformers missing: HF load check skipped)")
        return
    m = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32)
    ids = [[1, 403, 407, 261, 378, 325, 29, 11, 300, 256]]
    with torch.no_grad():
        ref = m(torch.tensor(ids)).logits.double().numpy()
    ids_p, lg_p = os.path.join(TMP, "hf_ids.txt"), os.path.join(TMP, "hf_logits.f32")
    with open(ids_p, "w") as f:
        f.write(f"1 {len(ids[0])}\n" + " ".join(map(str, ids[0])) + "\n")
    r = subprocess.run([dump, "--info", out, "--logits", ids_p, lg_p], capture_output=True, text=True)
    if check(r.returncode == 0, f"pb_dump: {r.stderr.strip()}"):
        ours = np.fromfile(lg_p, dtype="<f4").astype(np.float64).reshape(ref.shape)
        e = float(np.abs(ours - ref).max() / np.abs(ref).max())
        print(f"  depth-pruned folder in transformers: logits rel err {e:.1e}")
        # fp32 both sides, different summation orders: ~1e-6 (as tests/io measured)
        check(e <= 1e-4, f"transformers' logits differ from ours: {e}")


def test_dry_run():
    d = os.path.join(TMP, "llama7b_config")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                   "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 32, "vocab_size": 32000, "rms_norm_eps": 1e-6,
                   "max_position_embeddings": 2048, "tie_word_embeddings": False}, f)
    r = run("prune", d, "--method", "llm-pruner", "--group-ratio", 0.25, "--layers", "4:30", "--dry-run", "--json")
    if check(r.returncode == 0, f"dry run llm-pruner: {r.stderr.strip()}"):
        j = json.loads(r.stdout)
        check(j["params_before"] == 6738415616 and j["params_after"] == 5422977024,
              f"llm-pruner 0.25 on 4:30: {j['params_before']} -> {j['params_after']}")
        check(j["layers"][4]["n_heads"] == 24 and j["layers"][4]["ffn_dim"] == 8256 and j["layers"][3]["n_heads"] == 32,
              f"llm-pruner kept shapes: {j['layers'][3:5]}")
    r = run("prune", d, "--method", "depth", "--criterion", "magnitude", "--ratio", 0.2, "--dry-run", "--json")
    if check(r.returncode == 0, f"dry run depth: {r.stderr.strip()}"):
        j = json.loads(r.stdout)
        # Shortened LLaMA's "20%": 6 of 32 blocks, 5,524,115,456 parameters
        check(j["params_after"] == 5524115456 and len(j["layers"]) == 26, f"depth 0.2: {j['params_after']}")
    check(not os.path.exists(os.path.join(d, "model.safetensors")), "dry run wrote weights")


def test_bad_input():
    cases = [
        (["--method", "depth", "--criterion", "magnitude", "--ratio", 1.0], "outside [0, 1)"),
        (["--method", "depth", "--criterion", "magnitude", "--ratio", -0.1], "outside [0, 1)"),
        (["--method", "depth", "--criterion", "magnitude", "--num-blocks", 2, "--protect-first", 2, "--protect-last", 2],
         "protect"),
        (["--method", "llm-pruner", "--group-ratio", 0.25, "--layers", "2:9", *CALIB], "--layers 2:9"),
        (["--method", "pruneall", "--ratio", 0.2], "unknown method 'pruneall'"),
        (["--method", "depth", "--criterion", "entropy", "--ratio", 0.2], "entropy"),
        (["--method", "depth", "--criterion", "taylor", "--num-blocks", 1], "calib"),
    ]
    for args, want in cases:
        out = os.path.join(TMP, "bad")
        r = run("prune", MODEL, *args, "--out", out)
        err = r.stderr.strip()
        check(r.returncode == 1 and len(err.splitlines()) == 1 and want in err,
              f"{args}: exit {r.returncode}, stderr '{err}' (want '{want}')")
        check(not os.path.exists(out), f"{args}: wrote {out}")
    r = run("importance", MODEL, "--criterion", "entropy", "--granularity", "block")
    check(r.returncode == 1 and "entropy" in r.stderr, f"importance unknown criterion: {r.stderr.strip()}")


def test_importance():
    r = run("importance", MODEL, "--criterion", "taylor", "--granularity", "block", *CALIB, "--json")
    if check(r.returncode == 0, f"importance: {r.stderr.strip()}"):
        j = json.loads(r.stdout)
        check(j["criterion"] == "taylor" and j["granularity"] == "block" and len(j["scores"]) == 5 and
              all(isinstance(x, float) and x > 0 for x in j["scores"]), f"importance json: {j}")
    r = run("importance", MODEL, "--criterion", "l2", "--granularity", "head", "--json")
    if check(r.returncode == 0, f"importance l2 head: {r.stderr.strip()}"):
        j = json.loads(r.stdout)
        check(len(j["scores"]) == 5 and all(len(x) == 4 for x in j["scores"]), f"head scores: {j['scores']}")


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if not os.path.exists(MODEL):
        print(f"SKIP: {MODEL} not found (set PB_SHARED)", file=sys.stderr)
        return 77
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    depth_out = test_methods()
    if os.path.exists(os.path.join(depth_out, "config.json")):
        test_depth_is_hf(args[0], depth_out)
    test_dry_run()
    test_bad_input()
    test_importance()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""test_width_cli.py — llm-pruner, magnitude and random through `prunebench prune` and
`prunebench importance`:
  - dry runs on config-only folders: LLaMA-7B at --group-ratio 0.25 --layers 4:30 gives
    5,422,977,024 parameters (also from the equivalent --ratio), Llama-3-8B 6,612,586,496;
  - on stories260K with tinystories windows: the structures the CLI removes are the ones the
    library removes (width_tool, same options); the sliced and the --mask'ed written models
    give the same logits (pb_dump) and the sliced one has the reported shapes; importance
    scores equal the library's; magnitude and random remove LLM-Pruner's per-layer counts;
  - bad options exit 1 with one line.

usage: test_width_cli.py WIDTH_TOOL PB_DUMP
Exit 77 (skip) when the prunebench binary (PB_BIN) is absent."""
import json
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

# Sliced vs masked logits through the writer and the reader (fp32 files): the same sums up to
# the summation order, ~1e-7 relative; see tests/prune_width/test_width_mask.c.
MASK_TOL = 1e-5
# CLI and library scores are the same computation; the CLI's JSON prints doubles with at
# least 15 significant digits.
SCORE_TOL = 1e-12

LLAMA7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
           "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
           "vocab_size": 32000, "rms_norm_eps": 1e-6, "tie_word_embeddings": False}
LLAMA3 = dict(LLAMA7B, intermediate_size=14336, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0)

failures = 0


def check(ok, msg):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {msg}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def prune_json(pb, args):
    r = run([pb, "prune", *args, "--json"])
    if r.returncode != 0:
        raise RuntimeError(f"prunebench prune {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def dry_runs(pb, tmp):
    for name, cfg, before, after, kv, ffn in (("7b", LLAMA7B, 6738415616, 5422977024, 24, 8256),
                                              ("l3", LLAMA3, 8030261248, 6612586496, 6, 10752)):
        d = os.path.join(tmp, f"cfg_{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        for method in ("llm-pruner", "magnitude", "random"):
            j = prune_json(pb, [d, "--method", method, "--group-ratio", "0.25", "--layers", "4:30", "--dry-run"])
            L = j["layers"]
            ok = (j["params_before"] == before and j["params_after"] == after and L[4]["n_kv_heads"] == kv and
                  L[29]["ffn_dim"] == ffn and L[30]["ffn_dim"] == cfg["intermediate_size"])
            check(ok, f"dry run {name} {method} r=0.25 layers 4:30: {j['params_before']} -> {j['params_after']}")
    d = os.path.join(tmp, "cfg_7b")
    j = prune_json(pb, [d, "--method", "llm-pruner", "--ratio", repr((6738415616 - 5422977024) / 6738415616),
                        "--layers", "4:30", "--dry-run"])
    check(j["params_after"] == 5422977024, f"dry run 7b --ratio 0.1952..: {j['params_after']}")


def logits(dump, model, ids_path, out):
    r = run([dump, model, "--logits", ids_path, out])
    if r.returncode != 0:
        raise RuntimeError(f"pb_dump {model}: {r.stderr.strip()}")
    return np.fromfile(out, dtype="<f4").astype(np.float64)


def stories(pb, tool, dump, tmp, shared):
    gguf = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    data = os.path.join(shared, "data")
    calib = ["--calib", "tinystories", "--calib-sampling", "contiguous", "--calib-samples", "8", "--calib-seq-len",
             "64", "--data-dir", data]
    lib_calib = ["--calib", "tinystories", "--data-dir", data, "--n", "8", "--T", "64"]
    sel = ["--criterion", "param_mix", "--group-ratio", "0.5", "--layers", "1:4"]
    outs = {}
    for mode in ("slice", "mask"):
        outs[mode] = os.path.join(tmp, f"stories_{mode}")
        extra = ["--mask"] if mode == "mask" else []
        outs[mode + "_json"] = prune_json(pb, [gguf, "--method", "llm-pruner", *sel, *calib, *extra,
                                               "--out", outs[mode]])
    j = outs["slice_json"]
    lib = subprocess.run([tool, gguf, *lib_calib, "--prune", "--criterion", "param_mix", "--native", "0.5",
                          "--layers", "1:4"], capture_output=True, text=True)
    libj = json.loads(lib.stdout) if lib.returncode == 0 else {"removed": None}
    kinds = {"head": 3, "channel": 4}
    cli_removed = [[x["layer"], kinds[x["kind"]], x["index"]] for x in j["removed"]]
    check(cli_removed == libj["removed"] and len(cli_removed) > 0,
          f"stories260K llm-pruner param_mix r=0.5 layers 1:4: CLI removes the library's {len(cli_removed)} structures")
    check(outs["mask_json"]["removed"] == j["removed"] and
          outs["mask_json"]["params_after"] == outs["mask_json"]["params_before"],
          "--mask removes the same structures and keeps every shape")
    ids_path = os.path.join(tmp, "ids.txt")
    rng = np.random.default_rng(5)
    with open(ids_path, "w") as f:
        f.write("2 32\n" + " ".join(str(int(x)) for x in rng.integers(0, 512, 64)) + "\n")
    a = logits(dump, outs["slice"], ids_path, os.path.join(tmp, "a.f32"))
    b = logits(dump, outs["mask"], ids_path, os.path.join(tmp, "b.f32"))
    o = logits(dump, gguf, ids_path, os.path.join(tmp, "o.f32"))
    e = float(np.abs(a - b).max() / np.abs(b).max())
    moved = float(np.abs(b - o).max() / np.abs(o).max())
    check(e <= MASK_TOL and moved > 1e-3,
          f"written sliced vs masked model logits {e:.2e} (pruning moved them {moved:.2f})")
    info = json.loads(run([dump, "--info", outs["slice"]]).stdout)
    shapes = [[L["n_heads"], L["n_kv_heads"], L["ffn_dim"]] for L in info["layers"]]
    check(shapes == [[L["n_heads"], L["n_kv_heads"], L["ffn_dim"]] for L in j["layers"]] and
          shapes[2] == [4, 2, 86] and shapes[0] == [8, 4, 172] and info["params"] == j["params_after"],
          f"written model has the reported shapes {shapes}")

    r = run([pb, "importance", gguf, "--criterion", "vectorize", "--granularity", "head", *calib, "--json"])
    lib = run([tool, gguf, *lib_calib, "--scores", "--criterion", "vectorize"])
    if r.returncode != 0 or lib.returncode != 0:
        check(False, f"importance: {r.stderr.strip()} {lib.stderr.strip()}")
    else:
        cs, ls = json.loads(r.stdout)["scores"], json.loads(lib.stdout)["heads"]
        err = max(abs(x - y) / max(abs(y), 1e-300) for cl, ll in zip(cs, ls) for x, y in zip(cl, ll))
        check(len(cs) == 5 and [len(x) for x in cs] == [4] * 5 and err <= SCORE_TOL,
              f"importance vectorize/head: CLI equals library ({err:.1e})")

    for method, extra in (("magnitude", ["--criterion", "l1"]), ("random", ["--seed", "3"])):
        j = prune_json(pb, [gguf, "--method", method, *extra, "--group-ratio", "0.5", "--layers", "1:4",
                            "--out", os.path.join(tmp, f"stories_{method}")])
        per = {}
        for x in j["removed"]:
            per[(x["layer"], x["kind"])] = per.get((x["layer"], x["kind"]), 0) + 1
        want = {(l, k): n for l in (1, 2, 3) for k, n in (("head", 2), ("channel", 86))}
        check(per == want, f"{method}: 2 of 4 KV groups and 86 of 172 channels in layers 1..3")

    for args, msg in ((["--method", "llm-pruner", "--group-ratio", "0.25"], "need calibration data"),
                      (["--method", "llm-pruner", "--group-ratio", "0.25", "--aggregation", "median", *calib],
                       "unknown --aggregation 'median'"),
                      (["--method", "magnitude", "--group-ratio", "0.25", "--ratio", "0.2"], "not both")):
        r = run([pb, "prune", gguf, *args, "--out", os.path.join(tmp, "bad")])
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and msg in lines[0] and lines[0].startswith("prunebench: error:"),
              f"prune {' '.join(args[:4])}...: exit {r.returncode}, {lines}")


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tool, dump = args
    pb = os.environ.get("PB_BIN", "")
    if not os.path.exists(pb) or run([pb, "prune", "--help"]).returncode != 0:
        print(f"SKIP: no prunebench with a prune command at '{pb}'", file=sys.stderr)
        return 77
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_width_cli")
    os.makedirs(tmp, exist_ok=True)
    dry_runs(pb, tmp)
    shared = os.environ.get("PB_SHARED", "")
    if os.path.exists(os.path.join(shared, "models", "stories260K", "stories260K.gguf")):
        stories(pb, tool, dump, tmp, shared)
    else:
        print(f"note: {shared}/models/stories260K not found; only the dry runs were checked", file=sys.stderr)
    print(f"prune_width_cli: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

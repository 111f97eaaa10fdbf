"""test_depth_cli.py — depth pruning end to end through the CLI (`prunebench importance` and
`prunebench prune --method depth`) on stories260K, against the float64 reference of
test_depth_reference.py:

  - `importance --json` scores for magnitude, taylor and ppl at block, attn, mlp and module
    (the latter as {"attn", "mlp"}), on contiguous TinyStories windows (the very ids, printed
    by depth_dump --windows-only from pb_calib_load, feed the reference);
  - `prune --json` removed structures (one-shot k = 1, 2 and iterative k = 2, protect 1/1)
    equal the reference's, and the WRITTEN model (loaded back by pb_dump) computes the
    reference's logits of the model without those structures, sliced and with --mask;
  - --ratio on stories260K gives the block count the arithmetic gives;
  - the dry run on a LLaMA-7B-shaped config.json: 20% -> 6 blocks -> 5,524,115,456 params,
    35% -> 11 -> 4,512,198,656 (Shortened LLaMA's labels, reference §1.3);
  - errors: too many blocks for the unprotected ones, taylor without --calib, an unknown
    depth criterion, a module plan in a dry run — each one line, exit 1.

usage: test_depth_cli.py DEPTH_DUMP PB_DUMP    (prunebench from $PB_BIN)
Exit 77 (skip) when torch is missing, ../shared is absent, or prunebench is not built."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import test_depth_reference as D
    R = D.R
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

N_WIN, T_WIN = 6, 64


def cli(*args):
    return subprocess.run([os.environ["PB_BIN"], *args], capture_output=True, text=True)


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump, pb_dump = args
    pb_bin = os.environ.get("PB_BIN", "")
    if not os.path.exists(pb_bin):
        print(f"SKIP: prunebench not built ({pb_bin})", file=sys.stderr)
        return 77
    shared = os.environ.get("PB_SHARED", "")
    if not os.path.exists(os.path.join(shared, "models", "stories260K", "stories260K.gguf")):
        print(f"SKIP: {shared}/models/stories260K absent", file=sys.stderr)
        return 77
    torch.set_num_threads(2)
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_depth_cli")
    os.makedirs(tmp, exist_ok=True)
    gguf, spec, w = D.load_stories(tmp, pb_dump, shared)
    data = os.path.join(shared, "data")
    wpath = os.path.join(tmp, "windows.json")
    if not D.run_dump(dump, [gguf, "--calib", "tinystories", "--data-dir", data, "--n", str(N_WIN), "--T", str(T_WIN),
                             "--windows-only", "--out", wpath]):
        return 1
    with open(wpath) as f:
        ids = torch.tensor(json.load(f)["windows"], dtype=torch.long)
    ref = D.Ref(spec, w, ids)
    calib = ["--calib", "tinystories", "--calib-samples", str(N_WIN), "--calib-seq-len", str(T_WIN),
             "--calib-sampling", "contiguous", "--data-dir", data]
    failures = 0
    nl = len(spec["layers"])

    # importance
    worst = {c: 0.0 for c in D.TOL}
    for crit in D.TOL:
        for gran in ("block", "attn", "mlp", "module"):
            r = cli("importance", gguf, "--criterion", crit, "--granularity", gran, *calib, "--json")
            if r.returncode != 0:
                print(f"FAIL importance {crit} {gran}: exit {r.returncode}: {r.stderr.strip()}")
                failures += 1
                continue
            j = json.loads(r.stdout)
            tables = j["scores"] if gran == "module" else {gran: j["scores"]}
            if j["method"] != "depth" or sorted(tables) != (["attn", "mlp"] if gran == "module" else [gran]):
                print(f"FAIL importance {crit} {gran}: method {j['method']}, tables {sorted(tables)}")
                failures += 1
                continue
            for kind, scores in tables.items():
                for i in range(nl):
                    e = D.rel(scores[i], ref.score(crit, i, kind))
                    worst[crit] = max(worst[crit], e)
                    if not e <= D.TOL[crit]:
                        print(f"FAIL importance {crit} {gran} {kind} layer {i}: {scores[i]} vs "
                              f"{ref.score(crit, i, kind)} ({e:.2e})")
                        failures += 1
    for crit, e in worst.items():
        print(f"{'ok  ' if e <= D.TOL[crit] else 'FAIL'} importance {crit}: worst relative error {e:.2e}")

    # prune: removed sets, and the written model's logits
    worst_logits, n_cases = 0.0, 0
    for crit in D.TOL:
        for gran in ("block", "attn", "mlp", "module"):
            for k, it in ((1, False), (2, False), (2, True)):
                masks = (False, True) if k == 2 and not it else (False,)
                for mask in masks:
                    what = f"prune {crit} {gran} k={k}{' iterative' if it else ''}{' mask' if mask else ''}"
                    out = os.path.join(tmp, "out")
                    r = cli("prune", gguf, "--method", "depth", "--criterion", crit, "--granularity", gran,
                            "--num-blocks", str(k), "--protect-first", "1", "--protect-last", "1", *calib, "--out", out,
                            "--json", *(["--iterative"] if it else []), *(["--mask"] if mask else []))
                    if r.returncode != 0:
                        print(f"FAIL {what}: exit {r.returncode}: {r.stderr.strip()}")
                        failures += 1
                        continue
                    n_cases += 1
                    j = json.loads(r.stdout)
                    got = [(x["layer"], x["kind"]) for x in j["removed"]]
                    want, amb = ref.prune(crit, gran, k, 1, 1, it)
                    if (got != want if it else sorted(got) != sorted(want)) and not amb:
                        print(f"FAIL {what}: removed {got}, reference {want}")
                        failures += 1
                    n_blocks = sum(kd == "block" for _, kd in got)
                    if len(j["layers"]) != nl - (0 if mask else n_blocks):
                        print(f"FAIL {what}: {len(j['layers'])} layers written")
                        failures += 1
                    ours, msg = R.run_ours(pb_dump, out, ids, tmp)
                    if ours is None:
                        print(f"FAIL {what}: the written model does not run: {msg}")
                        failures += 1
                        continue
                    e = R.rel_err(ours, ref.logits(frozenset(got)))
                    worst_logits = max(worst_logits, e)
                    if not e <= R.TOL:
                        print(f"FAIL {what}: written model's logits off the reference by {e:.2e}")
                        failures += 1
    print(f"{'ok  ' if worst_logits <= R.TOL else 'FAIL'} {n_cases} prune runs: written models' logits, worst "
          f"relative error {worst_logits:.2e} (tolerance {R.TOL:g}, test_hf_reference.py's)")

    # --ratio: all blocks alike, so k = floor(ratio * params / block params), capped by candidates
    params = sum(t.numel() for t in w.values())
    block = ref.params(0, "block")
    for ratio in (0.1, 0.3, 0.5):
        r = cli("prune", gguf, "--method", "depth", "--criterion", "magnitude", "--ratio", str(ratio),
                "--protect-first", "1", "--protect-last", "1", "--out", os.path.join(tmp, "out"), "--json")
        k = int(ratio * params // block)
        if k > nl - 2:
            ok = r.returncode == 1 and f"removing {k} blocks needs more than the {nl - 2} unprotected ones" in r.stderr
        else:
            j = json.loads(r.stdout) if r.returncode == 0 else {}
            want, _ = ref.prune("magnitude", "block", k, 1, 1, False)
            ok = r.returncode == 0 and sorted((x["layer"], x["kind"]) for x in j["removed"]) == sorted(want) and \
                j["params_after"] == params - k * block
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} --ratio {ratio}: {k} block(s) of {block} from {params}"
              f"{'' if ok else ': ' + r.stdout + r.stderr}")

    # dry run on a LLaMA-7B-shaped config (no weights)
    cfg_dir = os.path.join(tmp, "llama7b")
    os.makedirs(cfg_dir, exist_ok=True)
    with open(os.path.join(cfg_dir, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                   "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 32, "vocab_size": 32000, "rms_norm_eps": 1e-6,
                   "max_position_embeddings": 2048, "tie_word_embeddings": False, "hidden_act": "silu"}, f)
    for ratio, blocks, after in ((0.20, 6, 5524115456), (0.35, 11, 4512198656)):
        r = cli("prune", cfg_dir, "--method", "depth", "--ratio", str(ratio), "--protect-first", "4",
                "--protect-last", "2", "--dry-run", "--json")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        ok = r.returncode == 0 and j["params_before"] == 6738415616 and j["params_after"] == after and \
            len(j["layers"]) == 32 - blocks
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} dry run LLaMA-7B --ratio {ratio}: {j.get('params_after')} params, "
              f"{len(j.get('layers', []))} layers{'' if ok else ': ' + r.stderr.strip()}")

    # errors: one line, exit 1
    errors = [
        (["prune", gguf, "--method", "depth", "--criterion", "magnitude", "--num-blocks", "4", "--protect-first", "1",
          "--protect-last", "1", "--out", os.path.join(tmp, "bad")],
         "prunebench: error: prune: removing 4 blocks needs more than the 3 unprotected ones (--protect-first 1 "
         "--protect-last 1)"),
        (["prune", gguf, "--method", "depth", "--criterion", "taylor", "--num-blocks", "1", "--out",
          os.path.join(tmp, "bad")],
         "prunebench: error: prune: criterion taylor needs calibration data (--calib NAME|FILE)"),
        (["prune", gguf, "--method", "depth", "--num-blocks", "1", "--out", os.path.join(tmp, "bad")],
         "prunebench: error: prune: criterion taylor needs calibration data (--calib NAME|FILE)"),
        (["prune", gguf, "--method", "depth", "--criterion", "l2", "--num-blocks", "1", "--out",
          os.path.join(tmp, "bad")],
         "prunebench: error: prune: unknown depth criterion 'l2' (magnitude, taylor, ppl)"),
        (["prune", cfg_dir, "--method", "depth", "--granularity", "module", "--ratio", "0.2", "--dry-run"],
         "prunebench: error: prune --dry-run: method depth plans whole blocks only; which modules go depends on "
         "the weights"),
        (["prune", cfg_dir, "--method", "depth", "--ratio", "0.85", "--protect-first", "4", "--protect-last", "2",
          "--dry-run"],
         "prunebench: error: prune: removing 28 blocks needs more than the 26 unprotected ones (--protect-first 4 "
         "--protect-last 2)"),
    ]
    for a, want in errors:
        r = cli(*a)
        ok = r.returncode == 1 and r.stderr.strip() == want and not r.stdout
        failures += not ok
        got = "" if ok else f" (got exit {r.returncode}: {r.stderr.strip()})"
        print(f"{'ok  ' if ok else 'FAIL'} error: {want}{got}")
    print(f"prune_depth_cli: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

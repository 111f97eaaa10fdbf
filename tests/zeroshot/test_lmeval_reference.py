"""test_lmeval_reference.py — `prunebench zeroshot` against an independent implementation of
lm-eval's semantics (lmeval_ref.py: Python task readers, sentencepiece, transformers'
LlamaForCausalLM in float64) on the first items of each of the seven task files.

A tiny random LLaMA with the real 32000-piece LLaMA tokenizer is written as a HF folder.
For both encode modes, with and without --bos, every item must agree: context and
continuation token ids exactly, loglikelihoods to 1e-5 relative, greedy flags, predictions
for acc and acc_norm, and the task's acc / acc_norm / stderr. A second model with a
48-token context makes lm-eval's left truncation bite (BoolQ, HellaSwag, PIQA contexts are
longer). The shared-context batching must give the same loglikelihoods whatever the
scheduler does: every choice alone (--no-share --batch 1), one row per pass, questions
merged into few padded passes, a batch smaller than one question.

usage: test_lmeval_reference.py   (PB_BIN, PB_SHARED, PB_TMP from CTest)
Exit 77 (skip) when ../shared or torch / transformers / sentencepiece / safetensors are missing."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmeval_ref as ref  # noqa: E402

try:
    import sentencepiece as spm
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "zeroshot_reference")
DATA = os.path.join(SHARED, "data")
TOK = os.path.join(DATA, "tokenizer", "tokenizer.model")
LIMIT = 20

# Loglikelihoods: ours are fp32 logits with a float64 log-softmax; the reference is float64
# throughout. A continuation's ll is a sum of <= ~100 terms of magnitude ~10 (32000-way
# softmax), each off by ~1e-7 relative from fp32 rounding in a 2-layer, dim-32 model, so the
# sum is off by well under 1e-6 relative; 1e-5 leaves a 10x margin, while a wrong token,
# position or truncation changes ll by 1e-2 or more.
LL_RTOL = 1e-5
# Two choices closer than this (relative, in ll or ll/len) are a near tie: fp32 rounding may
# order them either way, so either prediction is accepted there (and counted in the log).
TIE_RTOL = 1e-5

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 30:
            print("FAIL:", what, file=sys.stderr)


def write_model(folder, max_pos, seed):
    """Tiny random LLaMA (vocab 32000 to match the real tokenizer, dim 32) as a HF folder."""
    os.makedirs(folder, exist_ok=True)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_pos,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, torch_dtype="float32")
    g = torch.Generator().manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    sd = {}
    for name, p in model.state_dict().items():
        if name.endswith("norm.weight"):
            t = 1.0 + 0.2 * (torch.rand(p.shape, generator=g) * 2 - 1)
        elif name == "model.embed_tokens.weight":
            t = torch.rand(p.shape, generator=g) * 2 - 1
        else:   # (out, in): scale 1/sqrt(in) keeps activations O(1); lm_head gives O(1) logits
            t = (torch.rand(p.shape, generator=g) * 2 - 1) * p.shape[1] ** -0.5 * (3.0 if "lm_head" in name else 1.0)
        sd[name] = t.float().contiguous()
    save_file(sd, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        d = cfg.to_dict()
        d["architectures"] = ["LlamaForCausalLM"]
        json.dump(d, f, indent=1)
    model.load_state_dict(sd)
    return model.double().eval()


def run_ours(model_dir, tasks, limit, extra, tag):
    samples = os.path.join(TMP, f"samples_{tag}.jsonl")
    cmd = [BIN, "-q", "zeroshot", model_dir, "--tokenizer", TOK, "--data-dir", DATA, "--tasks", ",".join(tasks),
           "--limit", str(limit), "--samples", samples, "--json", "--threads", "1", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    out = json.loads(p.stdout)
    items = {}
    with open(samples) as f:
        for line in f:
            s = json.loads(line)
            items.setdefault(s["task"], []).append(s)
    return out, items


def near_tie(vals, i, j):
    scale = max(abs(vals[i]), abs(vals[j]), 1e-30)
    return abs(vals[i] - vals[j]) <= TIE_RTOL * scale


def compare(tag, model, sp, max_len, out, items, tasks, limit, mode, bos, cache):
    ties = 0
    for task in tasks:
        docs = ref.load_task(DATA, task, limit)
        got = items.get(task, [])
        check(len(got) == len(docs), f"{tag} {task}: {len(got)} items, expected {len(docs)}")
        accs, accns, exact = [], [], True
        for k, ((reqs, choices, gold), s) in enumerate(zip(docs, got)):
            where = f"{tag} {task} doc {k}"
            check(s["gold"] == gold, f"{where}: gold {s['gold']} != {gold}")
            check(s["choice_len"] == [len(c) for c in choices], f"{where}: choice lengths {s['choice_len']}")
            lls = []
            for c, (ctx, cont) in enumerate(reqs):
                ce, ke = ref.encode_request(sp, ctx, cont, mode, bos)
                check(s["ctx_ids"][c] == ce, f"{where} choice {c}: context ids differ")
                check(s["cont_ids"][c] == ke, f"{where} choice {c}: continuation ids {s['cont_ids'][c]} != {ke}")
                key = (tuple(ce), tuple(ke), max_len)
                if key not in cache:
                    cache[key] = ref.loglikelihood(model, ce, ke, max_len)
                ll, greedy = cache[key]
                lls.append(ll)
                check(abs(s["ll"][c] - ll) <= LL_RTOL * abs(ll),
                      f"{where} choice {c}: ll {s['ll'][c]:.9g} vs reference {ll:.9g}")
                check(s["greedy"][c] == greedy, f"{where} choice {c}: greedy {s['greedy'][c]} vs {greedy}")
            pred = ref.argmax_first(lls)
            if s["pred"] != pred:
                ok = near_tie(lls, s["pred"], pred)
                ties += ok
                exact = exact and not ok
                check(ok, f"{where}: pred {s['pred']} vs reference {pred} (lls {lls})")
            accs.append(1.0 if pred == gold else 0.0)
            if ref.HAS_NORM[task]:
                norm = [ll / len(ch) for ll, ch in zip(lls, choices)]
                pn = ref.argmax_first(norm)
                if s["pred_norm"] != pn:
                    ok = near_tie(norm, s["pred_norm"], pn)
                    ties += ok
                    exact = exact and not ok
                    check(ok, f"{where}: pred_norm {s['pred_norm']} vs reference {pn}")
                accns.append(1.0 if pn == gold else 0.0)
            else:
                check(s["pred_norm"] is None, f"{where}: pred_norm should be null")
        row = next((t for t in out["tasks"] if t["task"] == task), None)
        check(row is not None, f"{tag} {task}: missing from the JSON")
        if row is None or not exact:
            continue
        # the aggregate metrics are means of exactly equal 0/1 vectors: equal to rounding
        check(row["n"] == len(docs), f"{tag} {task}: n {row['n']}")
        check(abs(row["acc"] - sum(accs) / len(accs)) < 1e-12, f"{tag} {task}: acc {row['acc']}")
        check(abs(row["acc_stderr"] - ref.mean_stderr(accs)) < 1e-12, f"{tag} {task}: acc_stderr")
        if ref.HAS_NORM[task]:
            check(abs(row["acc_norm"] - sum(accns) / len(accns)) < 1e-12, f"{tag} {task}: acc_norm")
            check(abs(row["acc_norm_stderr"] - ref.mean_stderr(accns)) < 1e-12, f"{tag} {task}: acc_norm_stderr")
        else:
            check(row["acc_norm"] is None and row["acc_norm_stderr"] is None, f"{tag} {task}: acc_norm not null")
    return ties


def compare_runs(tag, a, b):
    """Same items, same tokens, loglikelihoods equal to rounding."""
    for task, xs in a.items():
        ys = b.get(task, [])
        check(len(xs) == len(ys), f"{tag} {task}: item counts differ")
        for x, y in zip(xs, ys):
            check(x["ctx_ids"] == y["ctx_ids"] and x["cont_ids"] == y["cont_ids"], f"{tag} {task}: tokens differ")
            for u, v in zip(x["ll"], y["ll"]):
                check(abs(u - v) <= LL_RTOL * abs(v), f"{tag} {task} doc {x['doc']}: ll {u} vs {v}")


def main():
    for p in (BIN, TOK, DATA):
        if not os.path.exists(p):
            print(f"SKIP: {p} not found", file=sys.stderr)
            return 77
    os.makedirs(TMP, exist_ok=True)
    torch.manual_seed(0)
    sp = spm.SentencePieceProcessor(model_file=TOK)
    tasks = ref.TASKS
    model_dir = os.path.join(TMP, "tiny2048")
    model = write_model(model_dir, 2048, 1)
    cache, ties = {}, 0
    base = base_json = None
    for mode in ("whole", "separate"):
        for bos in (False, True):
            tag = f"{mode}{'+bos' if bos else ''}"
            extra = ["--encode", mode] + (["--bos"] if bos else [])
            out, items = run_ours(model_dir, tasks, LIMIT, extra, tag)
            check(out["encode"] == mode and out["bos"] == bos, f"{tag}: JSON echoes the settings")
            ties += compare(tag, model, sp, 2048, out, items, tasks, LIMIT, mode, bos, cache)
            print(f"{tag}: compared {sum(len(v) for v in items.values())} items")
            if base is None:
                base, base_json = items, out
    # the scheduling must not change the numbers: every choice alone; the cost model told
    # that a pass is free (one row per pass) or very dear (questions merged into few passes,
    # choices padded into one pass); a batch smaller than a question (passes within one)
    base_out = base_json
    passes = lambda o: sum(t["forward_passes"] for t in o["tasks"])
    for extra in (["--no-share", "--batch", "1"], ["--pass-overhead", "0"], ["--pass-overhead", "1000"],
                  ["--pass-overhead", "1000", "--batch", "3"], ["--no-share", "--pass-overhead", "1000"]):
        o, other = run_ours(model_dir, tasks, LIMIT, extra, "sched")
        compare_runs(" ".join(extra) + " vs default", other, base)
        if extra == ["--pass-overhead", "1000"]:
            check(passes(o) * 4 < passes(base_out), f"--pass-overhead 1000: {passes(o)} passes, default "
                                                     f"{passes(base_out)}: the merging path was not taken")
    # left truncation: a 48-token context is shorter than these tasks' inputs
    short_dir = os.path.join(TMP, "tiny48")
    short = write_model(short_dir, 48, 2)
    for mode in ("whole", "separate"):
        tag = f"ctx48 {mode}"
        trunc = ["boolq", "hellaswag", "piqa"]
        out, items = run_ours(short_dir, trunc, 6, ["--encode", mode], tag.replace(" ", "_"))
        n_long = sum(len(c) + len(k) > 49 for t in items.values() for s in t for c, k in zip(s["ctx_ids"], s["cont_ids"]))
        check(n_long > 0, f"{tag}: no request is longer than the context (the test would not test truncation)")
        ties += compare(tag, short, sp, 48, out, items, trunc, 6, mode, False, {})
        print(f"{tag}: {n_long} requests truncated on the left")
    print(f"near ties accepted: {ties}")
    print(f"zeroshot_reference: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

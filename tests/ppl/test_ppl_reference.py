"""test_ppl_reference.py — `prunebench ppl` against an independent PyTorch implementation.

A tiny random LLaMA (vocabulary 32000, so that the real LLaMA tokenizer applies; context
256) is written as a Hugging Face folder. The reference builds everything itself:
  - rows with Python's text mode and str.strip() (HF wikitext / ptb_text_only semantics),
    joined with "\\n\\n" (or " "), tokenized by python sentencepiece;
  - windows as LLM-Pruner's PPLMetric (BOS once, non-overlapping, tail dropped, positions
    1..N-1 scored), Shortened LLaMA's ppl_bos (BOS + each window, all window tokens scored),
    GPTQ's c4 (" ".join of 1100 docs, cut to 256 windows) and the Hugging Face sliding-window
    loop (labels masked with -100 before the previous window's end);
  - logits from transformers' LlamaForCausalLM in float64, NLL by torch cross_entropy.
Compared: windows and predicted-token counts exactly; ppl to 1e-5 relative (the issue's
acceptance bound); nll_stderr to 1e-5 relative. Then a model with one NaN embedding row must
fail naming the first window that contains that token.

usage: test_ppl_reference.py        (exit 77 when torch/transformers/sentencepiece are missing)"""
import json
import math
import os
import subprocess
import sys

try:
    import torch
    import torch.nn.functional as F
    import sentencepiece as spm
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "ppl_reference")
DATA = os.path.join(SHARED, "data")
TOK = os.path.join(DATA, "tokenizer", "tokenizer.model")

# Our fp32 forward against float64: logits differ by ~1e-7 relative, so each token's NLL by
# ~1e-6 absolute at most and the mean NLL by less; ppl's relative error equals the mean's
# absolute error. 1e-5 (the bound) leaves 10x margin, while scoring one token more
# or less, or a different context, moves the mean NLL of these models by 1e-3 or more.
PPL_TOL = 1e-5
# The standard error is a spread of the same per-token NLLs (std ~1 nat): the same
# rounding moves it by ~1e-6 relative; a wrong token set or divisor moves it by > 1e-3.
STDERR_TOL = 1e-5

VOCAB, DIM, LAYERS, HEADS, KV, HD, FFN, CTX = 32000, 32, 2, 4, 2, 8, 64, 256
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def write_model(folder, nan_token=None):
    g = torch.Generator().manual_seed(1234)

    def rnd(*shape, scale=1.0, offset=0.0):
        return (torch.rand(*shape, generator=g, dtype=torch.float32) * 2 - 1) * scale + offset
    t = {"model.embed_tokens.weight": rnd(VOCAB, DIM), "model.norm.weight": rnd(DIM, scale=0.2, offset=1.0),
         "lm_head.weight": rnd(VOCAB, DIM)}  # scale 1: logits spread over several nats
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = rnd(DIM, scale=0.2, offset=1.0)
        t[p + "post_attention_layernorm.weight"] = rnd(DIM, scale=0.2, offset=1.0)
        for name, (o, n) in {"self_attn.q_proj": (HEADS * HD, DIM), "self_attn.k_proj": (KV * HD, DIM),
                             "self_attn.v_proj": (KV * HD, DIM), "self_attn.o_proj": (DIM, HEADS * HD),
                             "mlp.gate_proj": (FFN, DIM), "mlp.up_proj": (FFN, DIM),
                             "mlp.down_proj": (DIM, FFN)}.items():
            t[p + name + ".weight"] = rnd(o, n, scale=3 * n ** -0.5)  # strong attention: context matters
    if nan_token is not None:
        t["model.embed_tokens.weight"][nan_token] = float("nan")
    os.makedirs(folder, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": DIM,
           "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
           "num_key_value_heads": KV, "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "max_position_embeddings": CTX, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": "float32"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})


# ---- the reference protocols ------------------------------------------------------------

def rows(kind, path):
    if kind == "wikitext":
        return [line if line.strip() else "" for line in open(path, encoding="utf-8")]
    return [line.strip() for line in open(path, encoding="utf-8")]


def logits_of(model, seq):
    with torch.no_grad():
        return model(torch.tensor([seq]), use_cache=False).logits[0]


def ref_windows(model, stream, L, bos=None, max_windows=0):
    """LLM-Pruner PPLMetric (bos None) / Shortened LLaMA ppl_bos (bos = id): per-token NLLs."""
    n = len(stream) // L
    if max_windows:
        n = min(n, max_windows)
    out = []
    for i in range(n):
        w = stream[i * L:(i + 1) * L]
        if bos is not None:
            w = [bos] + w
        lg = logits_of(model, w)
        out.append(F.cross_entropy(lg[:-1], torch.tensor(w[1:]), reduction="none"))
    return torch.cat(out), n


def ref_sliding(model, stream, L, stride, max_windows=0):
    """The Hugging Face 'perplexity of fixed-length models' loop, token-weighted."""
    out, prev_end, count = [], 0, 0
    for begin in range(0, len(stream), stride):
        end = min(begin + L, len(stream))
        trg_len = end - prev_end
        ids = torch.tensor(stream[begin:end])
        labels = ids.clone()
        labels[:-trg_len] = -100
        lg = logits_of(model, stream[begin:end])
        nll = F.cross_entropy(lg[:-1], labels[1:], reduction="none", ignore_index=-100)
        out.append(nll[labels[1:] != -100])
        prev_end, count = end, count + 1
        if end == len(stream) or count == max_windows:
            break
    return torch.cat(out), count


def summary(nll, windows):
    return {"windows": windows, "tokens": nll.numel(), "ppl": math.exp(nll.mean().item()),
            "nll_stderr": (nll.std(unbiased=True) / math.sqrt(nll.numel())).item()}


def run_ours(model_dir, args):
    # one thread unless a case asks: the result must not depend on it, and CI machines are small
    threads = [] if "--threads" in args else ["--threads", "1"]
    cmd = [BIN, "ppl", model_dir, "--tokenizer", TOK, "--data-dir", DATA, "--json", *threads, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        return None, p
    return json.loads(p.stdout), p


def compare(name, ours, ref):
    if ours is None:
        check(False, f"{name}: prunebench failed")
        return
    rel = abs(ours["ppl"] - ref["ppl"]) / ref["ppl"]
    rel_se = abs(ours["nll_stderr"] - ref["nll_stderr"]) / ref["nll_stderr"]
    ok = (ours["windows"] == ref["windows"] and ours["tokens"] == ref["tokens"] and rel <= PPL_TOL
          and rel_se <= STDERR_TOL and abs(math.log(ours["ppl"]) - ours["nll_mean"]) < 1e-12)
    check(ok, f"{name}: windows {ours['windows']}/{ref['windows']} tokens {ours['tokens']}/{ref['tokens']} "
              f"ppl {ours['ppl']:.8g}/{ref['ppl']:.8g} (rel {rel:.1e}) stderr rel {rel_se:.1e}")


def main():
    if not os.path.isfile(TOK):
        print(f"SKIP: {TOK} absent", file=sys.stderr)
        return 77
    os.makedirs(TMP, exist_ok=True)
    folder = os.path.join(TMP, "model")
    write_model(folder)
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation="eager").eval()
    sp = spm.SentencePieceProcessor(model_file=TOK)
    bos = sp.bos_id()

    wiki = "\n\n".join(rows("wikitext", os.path.join(DATA, "wikitext2", "wiki.test.raw")))
    ptb = "\n\n".join(rows("lines", os.path.join(DATA, "ptb", "ptb.valid.txt")))
    ptb_test_sp = " ".join(rows("lines", os.path.join(DATA, "ptb", "ptb.test.txt")))
    wiki_ids, ptb_ids = sp.encode(wiki), sp.encode(ptb)

    # custom files: a .jsonl (rows joined with "\n\n") and a plain .txt (bytes as they are)
    docs = rows("lines", os.path.join(DATA, "ptb", "ptb.train.txt"))
    jl = os.path.join(TMP, "custom.jsonl")
    with open(jl, "w", encoding="utf-8") as f:
        for d in docs[:14]:
            f.write(json.dumps({"text": d, "id": 0}) + "\n")
    jl_ids = [bos] + sp.encode("\n\n".join(docs[:14]))
    txt = os.path.join(TMP, "custom.txt")
    with open(txt, "w", encoding="utf-8", newline="") as f:
        f.write("  A plain file keeps its bytes.\r\n\n" + " ".join(docs[20:40]) + "\n")
    txt_ids = [bos] + sp.encode(open(txt, "rb").read().decode())

    # a C4 folder built from PTB sentences: " ".join of the first 1100 of 1150 documents
    c4dir = os.path.join(TMP, "c4data")
    os.makedirs(os.path.join(c4dir, "c4"), exist_ok=True)
    with open(os.path.join(c4dir, "c4", "c4-validation.00000-of-00008.json"), "w", encoding="utf-8") as f:
        for i in range(1150):
            f.write(json.dumps({"text": docs[100 + i], "timestamp": "x", "url": f"u{i}"}) + "\n")
    c4_ids = ([bos] + sp.encode(" ".join(docs[100:1200])))[:256 * 16]

    n_sl = len(jl_ids)
    assert n_sl > 64 and (n_sl - 64) % 40 != 0, "the jsonl case must end in a partial sliding window"
    cases = [
        ("wikitext2 test, LLM-Pruner protocol", ["--dataset", "wikitext2", "--max-windows", "20"],
         lambda: ref_windows(model, [bos] + wiki_ids, 128, max_windows=20)),
        ("ptb validation, LLM-Pruner protocol", ["--dataset", "ptb", "--max-windows", "20"],
         lambda: ref_windows(model, [bos] + ptb_ids, 128, max_windows=20)),
        ("wikitext2 --bos-per-window", ["--dataset", "wikitext2", "--bos-per-window", "--max-windows", "20"],
         lambda: ref_windows(model, wiki_ids, 128, bos=bos, max_windows=20)),
        ("ptb --bos-per-window", ["--dataset", "ptb", "--bos-per-window", "--max-windows", "12"],
         lambda: ref_windows(model, ptb_ids, 128, bos=bos, max_windows=12)),
        ("wikitext2 --seq-len 256", ["--dataset", "wikitext2", "--seq-len", "256", "--max-windows", "8"],
         lambda: ref_windows(model, [bos] + wiki_ids, 256, max_windows=8)),
        ("wikitext2 sliding 128/48", ["--dataset", "wikitext2", "--stride", "48", "--max-windows", "20"],
         lambda: ref_sliding(model, [bos] + wiki_ids, 128, 48, max_windows=20)),
        ("ptb sliding 256/128", ["--dataset", "ptb", "--seq-len", "256", "--stride", "128", "--max-windows", "6"],
         lambda: ref_sliding(model, [bos] + ptb_ids, 256, 128, max_windows=6)),
        ("ptb test joined with ' ' (SparseGPT)", ["--dataset", "ptb", "--split", "test", "--join", " ",
                                                  "--max-windows", "10"],
         lambda: ref_windows(model, [bos] + sp.encode(ptb_test_sp), 128, max_windows=10)),
        ("jsonl file, sliding 64/40 to the end", ["--dataset", jl, "--seq-len", "64", "--stride", "40"],
         lambda: ref_sliding(model, jl_ids, 64, 40)),
        ("txt file, 32-token windows, batch 3, 2 threads", ["--dataset", txt, "--seq-len", "32", "--batch", "3",
                                                           "--threads", "2"],
         lambda: ref_windows(model, txt_ids, 32)),
        ("c4 (GPTQ c4-new: 1100 docs, ' ', 256 windows)", ["--dataset", "c4", "--data-dir", c4dir, "--seq-len", "16"],
         lambda: ref_windows(model, c4_ids, 16)),
    ]
    for name, args, ref in cases:
        ours, p = run_ours(folder, args)
        if ours is None:
            check(False, f"{name}: exit {p.returncode}: {p.stderr.strip()}")
            continue
        nll, w = ref()
        compare(name, ours, summary(nll, w))
        if name.startswith("c4"):
            check(ours["windows"] == 256 and ours["split"] == "validation", "c4: cut to 256 windows")

    # NaN: one embedding row is NaN; the first window holding that token as a scored
    # input (not in its last position) must be named. (Not the position: the CPU attention
    # multiplies masked scores, 0, by future values, so a NaN value row also reaches the
    # earlier rows of its 64-row tile; finite inputs are unaffected.)
    stream = [bos] + wiki_ids
    seen = set(stream[:3 * 128])
    target = next((t, i) for i, t in enumerate(stream[3 * 128:], 3 * 128) if t not in seen and i % 128 < 120)
    nan_dir = os.path.join(TMP, "model_nan")
    write_model(nan_dir, nan_token=target[0])
    ours, p = run_ours(nan_dir, ["--dataset", "wikitext2", "--max-windows", "20"])
    k = target[1] // 128
    lines = p.stderr.strip().splitlines()
    check(ours is None and p.returncode == 1 and len(lines) == 1 and lines[0].startswith("prunebench: error: ")
          and all(s in lines[0] for s in (f"window {k} of 20", "window position", "wiki.test.raw", "not finite")),
          f"NaN logits name window {k}: {p.stderr.strip()}")

    print(f"ppl_reference: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""test_cli.py — the prunebench command end to end on the real stories260K model.

Checks info/tokenize/score/generate output against independent references (a float64
numpy forward of the llama2.c file written here, with llama2.c's own interleaved RoPE, and
the reference greedy ids stored beside the model), and the error contract: one stderr line
"prunebench: error: ...", exit 1 for bad input, exit 2 for usage errors."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.environ.get("PB_TMP", tempfile.gettempdir())
MODEL_DIR = os.path.join(SHARED, "models", "stories260K")
GGUF = os.path.join(MODEL_DIR, "stories260K.gguf")
LBIN = os.path.join(MODEL_DIR, "stories260K.bin")
TOK = os.path.join(MODEL_DIR, "tok512.bin")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(*args, ok=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)
    if ok and p.returncode != 0:
        raise SystemExit(f"prunebench {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def llama2c_reference_logits(path, ids):
    """float64 forward of a llama2.c v0 checkpoint, written independently of the C code:
    RoPE on interleaved pairs (2j, 2j+1) as run.c does, so it does not share our
    interleaved->rotate-half conversion."""
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = np.frombuffer(raw[:28], np.int32)
    w = np.frombuffer(raw[28:], np.float32).astype(np.float64)
    hd, kvd = dim // n_heads, dim // n_heads * n_kv
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = w[off:off + n].reshape(shape)
        off += n
        return t
    emb = take(abs(vocab), dim)
    rms_att = take(n_layers, dim); wq = take(n_layers, dim, dim); wk = take(n_layers, kvd, dim)
    wv = take(n_layers, kvd, dim); wo = take(n_layers, dim, dim); rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim); w2 = take(n_layers, dim, hidden); w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g
    T = len(ids)
    pos = np.arange(T)[:, None]
    freq = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    ang = pos * freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # x (T, heads, hd), interleaved pairs
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos[:, None, :] - b * sin[:, None, :]
        out[..., 1::2] = a * sin[:, None, :] + b * cos[:, None, :]
        return out
    x = emb[ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(n_layers):
        h = rms(x, rms_att[l])
        q = rope((h @ wq[l].T).reshape(T, n_heads, hd))
        k = rope((h @ wk[l].T).reshape(T, n_kv, hd))
        v = (h @ wv[l].T).reshape(T, n_kv, hd)
        rep = n_heads // n_kv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, dim)
        x = x + o @ wo[l].T
        h = rms(x, rms_ffn[l])
        g, u = h @ w1[l].T, h @ w3[l].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w2[l].T
    return rms(x, rms_final) @ emb.T


def main():
    if not os.path.isfile(GGUF):
        print(f"SKIP: {MODEL_DIR} not found (set PB_SHARED)", file=sys.stderr)
        return 77
    if not os.path.isfile(BIN):
        raise SystemExit(f"{BIN} not built")
    os.makedirs(TMP, exist_ok=True)
    ref_ids = [int(t) for t in open(os.path.join(MODEL_DIR, "stories260K.greedy_ids.txt")).read().split()]
    ref_text = open(os.path.join(MODEL_DIR, "stories260K.greedy.txt")).read()

    # info: the shape stated in models/MANIFEST.tsv; params by hand: per layer
    # 2*64 norms + 64*64*2 (q,o) + 32*64*2 (k,v) + 3*172*64 = 45440; 5 layers + final norm 64
    # = 227264 without embeddings; + 512*64 tied embedding = 260032 ("260K").
    for args in ([GGUF], [LBIN, "--tokenizer", TOK]):
        info = json.loads(run("info", *args, "--json").stdout)
        check(info["dim"] == 64 and info["n_layers"] == 5 and info["vocab_size"] == 512, f"info shape {args}")
        check(info["params_no_embed"] == 227264 and info["params"] == 260032, f"info params {info['params']}")
        check(all(L == {"n_heads": 8, "n_kv_heads": 4, "head_dim": 8, "ffn_dim": 172, "attn": True, "mlp": True}
                  for L in info["layers"]), f"info layers {args}")
        check(info["format"] == ("gguf" if args[0] == GGUF else "llama2c"), "info format")

    # generate: greedy from an empty prompt reproduces llama2.c's reference ids and text
    for args in ([GGUF], [LBIN, "--tokenizer", TOK]):
        g = json.loads(run("generate", *args, "--prompt", "", "--steps", "256", "--json").stdout)
        check(g["ids"] == ref_ids[1:], f"generate ids {args[0]}")
        check(g["text"].strip() == ref_text.strip(), f"generate text {args[0]}")
        streamed = run("generate", *args, "--prompt", "", "--steps", "256").stdout
        check(streamed.strip() == ref_text.strip(), f"generate streamed text {args[0]}")

    # tokenize: the greedy text encodes back to ids the model generated (the text is a
    # plain decode of those ids, and this vocabulary round-trips such text)
    txt = os.path.join(TMP, "cli_text.txt")
    with open(txt, "w") as f:
        f.write("Once upon a time, there was a little girl named Lily.")
    ids_gguf = run("tokenize", GGUF, "--text", txt, "--bos").stdout.split()
    ids_bin = run("tokenize", LBIN, "--tokenizer", TOK, "--text", txt, "--bos").stdout.split()
    check(ids_gguf == ids_bin, "tokenize gguf == llama2c vocab")
    check([int(t) for t in ids_gguf] == ref_ids[:len(ids_gguf)], f"tokenize matches greedy prefix {ids_gguf}")
    check(run("tokenize", GGUF, "--text", txt).stdout.split() == ids_gguf[1:], "tokenize without --bos")

    # score: against the float64 numpy forward. fp32 logits of this 5-layer model differ from
    # float64 by ~1e-6 relative; the NLL mean over 256 tokens averages those errors, so 1e-5
    # relative is loose enough for summation order and tight enough to catch any real bug
    # (a wrong RoPE pair order or norm changes the NLL by > 1e-2).
    idf = os.path.join(TMP, "cli_ids.txt")
    with open(idf, "w") as f:
        f.write(" ".join(map(str, ref_ids)) + "\n")
    logits = llama2c_reference_logits(LBIN, ref_ids)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    nll = lse[:-1] - logits[np.arange(len(ref_ids) - 1), ref_ids[1:]]
    for args in ([GGUF], [LBIN]):
        s = json.loads(run("score", *args, "--ids", idf, "--json").stdout)
        check(s["tokens"] == 256, "score tokens")
        check(abs(s["nll_mean"] - nll.mean()) <= 1e-5 * nll.mean(), f"score nll_mean {s['nll_mean']} vs {nll.mean()}")
        check(abs(s["ppl"] - np.exp(nll.mean())) <= 1e-4 * np.exp(nll.mean()), "score ppl")
    s_text = json.loads(run("score", GGUF, "--text", txt, "--json").stdout)
    check(s_text["tokens"] == len(ids_gguf) - 1, "score --text counts tokens after BOS")

    # errors: one line, exit 1; usage errors exit 2
    def expect_error(args, code, needle):
        p = run(*args, ok=False)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == code, f"{args}: exit {p.returncode}, wanted {code}")
        check(len(lines) == 1, f"{args}: stderr has {len(lines)} lines: {p.stderr!r}")
        check(needle in p.stderr, f"{args}: {needle!r} not in {p.stderr!r}")
        if code == 1:
            check(p.stderr.startswith("prunebench: error: "), f"{args}: prefix {p.stderr!r}")
    expect_error(["info", os.path.join(TMP, "no-such-model")], 1, "no-such-model")
    bad_gguf = os.path.join(TMP, "cli_bad_magic.gguf")
    with open(bad_gguf, "wb") as f:
        f.write(b"GGUX\x03\x00\x00\x00" + bytes(64))
    expect_error(["info", bad_gguf], 1, "not a GGUF file")   # named .gguf: the GGUF reader explains
    expect_error(["frobnicate"], 2, "unknown command")
    expect_error(["info", GGUF, "--jsn"], 2, "--jsn")
    expect_error(["score", GGUF], 2, "--text")
    expect_error(["generate", GGUF, "--steps", "ten"], 2, "integer")
    expect_error(["tokenize", LBIN, "--text", txt], 1, "tokenizer")
    bad_ids = os.path.join(TMP, "cli_bad_ids.txt")
    with open(bad_ids, "w") as f:
        f.write("1 5 512 7\n")
    expect_error(["score", GGUF, "--ids", bad_ids], 1, "cli_bad_ids.txt")
    long_ids = os.path.join(TMP, "cli_long_ids.txt")
    with open(long_ids, "w") as f:
        f.write(" ".join(["5"] * 600))   # the llama2.c file's context is 512
    expect_error(["score", LBIN, "--ids", long_ids], 1, "context")
    check(run("--help").stdout.startswith("usage: prunebench"), "--help")
    for cmd in ("info", "tokenize", "score", "generate"):
        check(run(cmd, "--help").stdout.startswith(f"usage: prunebench {cmd}"), f"{cmd} --help")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("cli: ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

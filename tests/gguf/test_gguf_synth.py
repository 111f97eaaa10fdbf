#!/usr/bin/env python3
"""test_gguf_synth.py — tiny LLaMA GGUF files written by gguf-py, read back by pb_gguf_load.

Known random weights in Hugging Face layout are written the way llama.cpp's converter
writes them (q/k rows permuted per head into Meta's interleaved RoPE order, 2-D weights in
F32/F16/BF16/Q8_0/Q4_0/Q4_1 via gguf.quants, norms in F32) with GGUFWriter. The test tool
pb_dump (tests/tools) loads each file and dumps every weight in HF naming. Checks:
  * every dumped weight equals, bit for bit, gguf.quants.dequantize of the data stored in the
    file (read back with GGUFReader), after undoing the row permutation in numpy. Exact:
    dequantization is d*q (Q4_1: d*q + m) with d, m widened exactly from fp16 and one fp32
    rounding per operation, which numpy and the C reader both perform in fp32;
  * F32 weights equal the original HF weights exactly (so the un-permutation is right), and
    quantized ones are within the quantizer's own error bound of them (see `bound`);
  * shapes, per-layer head/FFN arrays (layers without attention or MLP), GQA, head_dim from
    key_length, biases, tied and untied heads, RoPE scaling, and which tensors are mapped.
Usage: test_gguf_synth.py PB_DUMP. Skips (77) without numpy or gguf."""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import gguf
    import gguf.quants
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

DUMP = sys.argv[1]
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "gguf_synth")
os.makedirs(TMP, exist_ok=True)
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


# ---- models ------------------------------------------------------------------------------

def make_hf(cfg, rng):
    """Random HF-layout weights for cfg (dict: dim, head_dim, vocab, tied, layers, bias)."""
    d, hd, V = cfg["dim"], cfg["head_dim"], cfg["vocab"]
    w = {}

    def r(*shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w["model.embed_tokens.weight"] = r(V, d, scale=1.0)
    w["model.norm.weight"] = (1 + r(d)).astype(np.float32)
    if not cfg["tied"]:
        w["lm_head.weight"] = r(V, d)
    for i, L in enumerate(cfg["layers"]):
        p = f"model.layers.{i}."
        q, kv, f = L["heads"] * hd, L["kv"] * hd, L["ffn"]
        if L["heads"]:
            w[p + "input_layernorm.weight"] = (1 + r(d)).astype(np.float32)
            w[p + "self_attn.q_proj.weight"] = r(q, d)
            w[p + "self_attn.k_proj.weight"] = r(kv, d)
            w[p + "self_attn.v_proj.weight"] = r(kv, d)
            w[p + "self_attn.o_proj.weight"] = r(d, q)
            if cfg.get("bias"):
                for n, size in (("q", q), ("k", kv), ("v", kv), ("o", d)):
                    w[p + f"self_attn.{n}_proj.bias"] = r(size)
        if f:
            w[p + "post_attention_layernorm.weight"] = (1 + r(d)).astype(np.float32)
            w[p + "mlp.gate_proj.weight"] = r(f, d)
            w[p + "mlp.up_proj.weight"] = r(f, d)
            w[p + "mlp.down_proj.weight"] = r(d, f)
            if cfg.get("bias"):
                for n, size in (("gate", f), ("up", f), ("down", d)):
                    w[p + f"mlp.{n}_proj.bias"] = r(size)
    return w


HF2GGUF = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight", "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def gguf_name(hf):
    if hf in HF2GGUF:
        return HF2GGUF[hf]
    parts = hf.split(".")  # model.layers.N.<module...>
    rest = ".".join(parts[3:])
    for k, v in HF2GGUF.items():
        if rest.startswith(k):
            return f"blk.{parts[2]}.{v}{rest[len(k):]}"
    raise KeyError(hf)


def to_meta(x, n_head):
    """HF rotate-half rows -> Meta interleaved rows, as llama.cpp's converter permutes
    (it passes n_head for q and n_head_kv for k)."""
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def from_meta(x, n_head):
    """The inverse, written independently of to_meta: Meta row 2j+i -> HF row i*half+j."""
    half = x.shape[0] // n_head // 2
    return x.reshape(n_head, half, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def rope_heads(cfg, hf):
    """Heads to permute q/k rows (and biases) over, 0 for other tensors."""
    if ".self_attn.q_proj." in hf or ".self_attn.k_proj." in hf:
        L = cfg["layers"][int(hf.split(".")[2])]
        return L["heads"] if ".q_proj." in hf else L["kv"]
    return 0


def llama3_factors(base, hd, factor=8.0, lo=1.0, hi=4.0, orig=8192):
    """Per-frequency divisors as llama.cpp's converter stores them in rope_freqs.weight."""
    import math
    freqs = 1.0 / (np.float32(base) ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)))
    out = []
    for fr in freqs:
        wl = 2 * math.pi / float(fr)
        if wl < orig / hi:
            out.append(1.0)
        elif wl > orig / lo:
            out.append(factor)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append(1 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def write_gguf(path, cfg, hf, qtype_of):
    w = gguf.GGUFWriter(path, "llama")
    layers = cfg["layers"]
    per = lambda key: [L[key] for L in layers] if cfg.get("arrays") else layers[0][key]
    w.add_context_length(cfg.get("ctx", 256))
    w.add_embedding_length(cfg["dim"])
    w.add_block_count(len(layers))
    w.add_feed_forward_length(per("ffn"))
    w.add_head_count(per("heads"))
    w.add_head_count_kv(per("kv"))
    w.add_layer_norm_rms_eps(cfg.get("eps", 1e-5))
    if "theta" in cfg:
        w.add_rope_freq_base(cfg["theta"])
    w.add_rope_dimension_count(cfg["head_dim"])
    if cfg.get("key_length"):
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if cfg.get("vocab_key"):
        w.add_vocab_size(cfg["vocab"])
    if cfg.get("linear"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg["linear"])
    tok = cfg.get("tokenizer")
    if tok == "llama":
        toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(8)]
        toks += [f"\u2581t{i}" for i in range(cfg["vocab"] - len(toks))]
        w.add_tokenizer_model("llama")
        w.add_token_list(toks)
        w.add_token_scores([-float(i) for i in range(len(toks))])
        w.add_token_types([2, 3, 3] + [6] * 8 + [1] * (len(toks) - 11))
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
    elif tok == "gpt2":
        toks = [chr(ord("a") + i) for i in range(20)] + ["ab", "abc", "<|end|>"]
        toks += [f"x{i}" for i in range(cfg["vocab"] - len(toks))]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt2")
        w.add_token_list(toks)
        w.add_token_types([1] * 22 + [3] + [1] * (len(toks) - 23))
        w.add_token_merges(["a b", "ab c"])
        w.add_bos_token_id(22)
        w.add_eos_token_id(22)
    types = {}
    for name, x in hf.items():
        g = gguf_name(name)
        h = rope_heads(cfg, name)
        data = to_meta(x, h) if h else x
        qt = qtype_of(g, data)
        types[g] = qt
        if qt == QT.F32:
            w.add_tensor(g, data)
        elif qt == QT.F16:
            w.add_tensor(g, data.astype(np.float16))
        else:
            w.add_tensor(g, gguf.quants.quantize(data, qt), raw_dtype=qt)
    if cfg.get("rope_freqs") is not None:
        w.add_tensor("rope_freqs.weight", cfg["rope_freqs"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return types


def run_dump(path, out=None, tok=False):
    args = [DUMP] + (["--tok"] if tok else []) + [path] + (["--tensors", out] if out else [])
    return subprocess.run(args, capture_output=True, text=True)


def bound(qt, x):
    """Largest |dequantized - original| the ggml quantizers allow, per element of x (HF
    layout; blocks are 32 consecutive values of a row, and the q/k row permutation moves
    whole rows, so blocks are the same in both orders)."""
    if qt == QT.F32:
        return np.zeros_like(x)
    if qt == QT.F16:  # round to nearest: half an ulp, 2^-11 relative (+ subnormal spacing)
        return np.abs(x) * 2.0 ** -11 + 2.0 ** -25
    if qt == QT.BF16:  # 8 significant bits: 2^-8 relative
        return np.abs(x) * 2.0 ** -8
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    if qt == QT.Q8_0:  # d = amax/127, rounding error d/2, plus d's own fp16 rounding times |q| <= 127
        b = amax / 127 * (0.5 + 127 * 2.0 ** -11) * 1.01
    elif qt == QT.Q4_0:  # d = -max/8: the opposite extreme clips to 7d, an error of up to |d|
        b = amax / 8 * (1 + 8 * 2.0 ** -11) * 1.01
    else:  # Q4_1: d = (max-min)/15, rounding d/2, plus fp16 rounding of d (times 15) and of min
        lo, hi = blocks.min(axis=1, keepdims=True), blocks.max(axis=1, keepdims=True)
        d = (hi - lo) / 15
        b = (d * (0.5 + 15 * 2.0 ** -11) + np.abs(lo) * 2.0 ** -11) * 1.01
    return np.broadcast_to(b, blocks.shape).reshape(x.shape)


def verify(tag, path, cfg, hf, types, expect_tied):
    out = os.path.join(TMP, tag)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    r = run_dump(path, out, tok=bool(cfg.get("tokenizer")))
    check(r.returncode == 0, f"{tag}: pb_dump failed: {r.stderr.strip()}")
    if r.returncode != 0:
        return
    j = json.load(open(os.path.join(out, "model.json")))
    reader = gguf.GGUFReader(path)
    stored = {t.name: t for t in reader.tensors}
    check(j["format"] == "gguf" and j["arch"] == "llama", f"{tag}: format/arch {j['format']}/{j['arch']}")
    check(j["dim"] == cfg["dim"] and j["n_layers"] == len(cfg["layers"]) and j["vocab_size"] == cfg["vocab"],
          f"{tag}: shape {j['dim']} {j['n_layers']} {j['vocab_size']}")
    check(j["tied"] == expect_tied and j["lm_head_is_tok_emb"] == expect_tied, f"{tag}: tied={j['tied']}")
    check(j["max_seq_len"] == cfg.get("ctx", 256), f"{tag}: max_seq_len {j['max_seq_len']}")
    check(np.float32(j["norm_eps"]) == np.float32(cfg.get("eps", 1e-5)), f"{tag}: norm_eps {j['norm_eps']}")
    check(np.float32(j["rope_theta"]) == np.float32(cfg.get("theta", 10000.0)), f"{tag}: rope_theta")
    for i, L in enumerate(cfg["layers"]):
        got = j["layers"][i]
        want = {"n_heads": L["heads"], "n_kv_heads": L["kv"], "ffn_dim": L["ffn"],
                "head_dim": cfg["head_dim"], "attn": L["heads"] > 0, "mlp": L["ffn"] > 0}
        check(all(got[k] == v for k, v in want.items()), f"{tag}: layer {i} shape {got} != {want}")
    check(set(j["tensors"]) == set(hf), f"{tag}: tensors {sorted(set(j['tensors']) ^ set(hf))} differ")
    for name, x in hf.items():
        if name not in j["tensors"]:
            continue
        g = gguf_name(name)
        got = np.fromfile(os.path.join(out, name + ".f32"), dtype=np.float32).reshape(x.shape)
        check(j["tensors"][name]["shape"] == list(x.shape) if x.ndim == 2 else True, f"{tag}: {name} shape")
        t = stored[g]
        check(t.tensor_type == types[g], f"{tag}: {g} stored as {t.tensor_type.name}, meant {types[g].name}")
        deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(x.shape).astype(np.float32)
        h = rope_heads(cfg, name)
        ref = from_meta(deq, h) if h else deq
        check(np.array_equal(got.view(np.uint32), ref.view(np.uint32)),
              f"{tag}: {name} ({types[g].name}) differs from gguf.quants.dequantize: max |diff| "
              f"{np.abs(got - ref).max():.3g}")
        err = np.abs(got - x)
        check(np.all(err <= bound(types[g], x)), f"{tag}: {name} ({types[g].name}) is {err.max():.3g} from the HF weight")
        if types[g] == QT.F32:
            check(np.array_equal(got.view(np.uint32), x.view(np.uint32)), f"{tag}: F32 {name} != original HF weight")
        mapped = j["tensors"][name]["mapped"]
        check(mapped == (types[g] == QT.F32), f"{tag}: {name} ({types[g].name}) mapped={mapped}")
    check(j["n_maps"] == (1 if any(types[gguf_name(n)] == QT.F32 for n in hf) else 0), f"{tag}: n_maps {j['n_maps']}")
    return j


# ---- valid files ---------------------------------------------------------------------------

def const_type(qt):
    return lambda g, x: QT.F32 if x.ndim == 1 else qt


ALL_TYPES = [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1]


def rotating():
    i = [0]

    def pick(g, x):
        i[0] += 1
        return ALL_TYPES[i[0] % len(ALL_TYPES)]
    return pick


def valid_files():
    rng = np.random.default_rng(1234)
    gqa = {"dim": 64, "head_dim": 16, "vocab": 48, "tied": False, "tokenizer": "llama", "theta": 500000.0,
           "layers": [{"heads": 4, "kv": 2, "ffn": 96}] * 2}
    hf = make_hf(gqa, rng)
    p = os.path.join(TMP, "f32_gqa_untied.gguf")
    types = write_gguf(p, gqa, hf, const_type(QT.F32))
    j = verify("f32_gqa_untied", p, gqa, hf, types, expect_tied=False)
    if j:
        tk = j.get("tokenizer", {})
        check(tk.get("vocab_size") == 48 and tk.get("bos") == 1 and tk.get("eos") == 2 and tk.get("kind") == "spm",
              f"f32_gqa_untied: tokenizer {tk}")
        check(j["bos_id"] == 1 and j["eos_id"] == 2, "f32_gqa_untied: bos/eos ids")
    f32_file = p

    # one file per tensor type, all 2-D weights in it (norms F32 as the converter keeps them); tied
    mha = {"dim": 64, "head_dim": 16, "vocab": 32, "tied": True, "layers": [{"heads": 4, "kv": 4, "ffn": 128}] * 2}
    hf = make_hf(mha, rng)
    for qt in ALL_TYPES[1:]:
        p = os.path.join(TMP, f"{qt.name.lower()}_tied.gguf")
        types = write_gguf(p, mha, hf, const_type(qt))
        verify(f"{qt.name}_tied", p, mha, hf, types, expect_tied=True)

    # per-layer arrays: a layer without attention, one without MLP; every type, norms too; untied
    arr = {"dim": 64, "head_dim": 16, "vocab": 40, "tied": False, "arrays": True, "tokenizer": "gpt2",
           "layers": [{"heads": 4, "kv": 2, "ffn": 96}, {"heads": 2, "kv": 1, "ffn": 64},
                      {"heads": 0, "kv": 0, "ffn": 32}, {"heads": 4, "kv": 4, "ffn": 0}]}
    hf = make_hf(arr, rng)
    p = os.path.join(TMP, "per_layer_mixed.gguf")
    types = write_gguf(p, arr, hf, rotating())
    check(set(types.values()) == set(ALL_TYPES), "per_layer_mixed: not every type used")
    j = verify("per_layer_mixed", p, arr, hf, types, expect_tied=False)
    if j:
        tk = j.get("tokenizer", {})
        check(tk.get("vocab_size") == 40 and tk.get("kind") == "bytelevel" and tk.get("bos") == 22,
              f"per_layer_mixed: tokenizer {tk}")

    # head_dim from key_length (q rows != dim), biases everywhere, llama.vocab_size, linear RoPE scaling
    bias = {"dim": 64, "head_dim": 16, "vocab": 24, "tied": True, "bias": True, "key_length": True,
            "vocab_key": True, "linear": 4.0, "eps": 1e-6, "ctx": 4096,
            "layers": [{"heads": 2, "kv": 1, "ffn": 96}] * 2}
    hf = make_hf(bias, rng)
    p = os.path.join(TMP, "bias_keylen.gguf")
    types = write_gguf(p, bias, hf, lambda g, x: QT.Q8_0 if x.ndim == 2 and "attn_q" not in g else QT.F32)
    j = verify("bias_keylen", p, bias, hf, types, expect_tied=True)
    if j:
        rs = j["rope_scaling"]
        check(rs["type"] == 2 and rs["factor"] == 4.0, f"bias_keylen: rope_scaling {rs}")

    # llama3 RoPE scaling stored as rope_freqs.weight (the converter's only record of it)
    l3 = dict(gqa, tokenizer=None, tied=True, theta=500000.0, rope_freqs=llama3_factors(500000.0, 16))
    hf = make_hf(l3, rng)
    p = os.path.join(TMP, "llama3_rope.gguf")
    types = write_gguf(p, l3, hf, const_type(QT.F32))
    f = l3["rope_freqs"]
    check(1.0 in f and 8.0 in f and np.any((f > 1) & (f < 8)), "llama3_rope: factors miss a region")
    j = verify("llama3_rope", p, l3, hf, types, expect_tied=True)
    if j:
        rs = j["rope_scaling"]
        check(rs["type"] == 1 and rs["factor"] == 8 and rs["low_freq_factor"] == 1 and rs["high_freq_factor"] == 4
              and rs["original_max_position"] == 8192, f"llama3_rope: rope_scaling {rs}")
    bad3 = dict(l3, rope_freqs=llama3_factors(500000.0, 16, lo=2.0))
    p = os.path.join(TMP, "llama3_custom.gguf")
    write_gguf(p, bad3, hf, const_type(QT.F32))
    return f32_file, p


if __name__ == "__main__":
    f32_file, custom_rope = valid_files()
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import gguf_bad  # the malformed-file cases
    gguf_bad.run(DUMP, TMP, f32_file, custom_rope, check)
    if failures:
        print(f"test_gguf_synth: {len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("test_gguf_synth: ok")

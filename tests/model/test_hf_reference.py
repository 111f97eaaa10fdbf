"""test_hf_reference.py — the CPU forward against an independent float64 PyTorch LLaMA.

Builds tiny random LLaMA models as Hugging Face folders (config.json + model.safetensors):
GQA and MHA, tied and untied heads, rope_theta 10000 and 500000, llama3 and linear
rope_scaling, non-uniform per-layer shapes ("prunebench_layers": a layer without attention,
one without MLP, o/down and other partial biases), stored as F32, F16 and BF16. Two of them
are also exported as llama2.c files (legacy v0 and version 1, q/k rows in Meta's
interleaved order). Reference logits come from the float64 implementation below; for the
uniform models that implementation is itself checked against transformers'
LlamaForCausalLM in float64. F16/BF16 references use the same rounded weights, upcast,
so the only difference left is our fp32 arithmetic.

usage: test_hf_reference.py PB_DUMP   (the test tool in tests/tools)
Exit 77 (skip) when torch, safetensors or transformers are missing."""
import json
import math
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    from safetensors.torch import save_file
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

# Tolerance for our fp32 logits against the float64 reference, measured per sequence as
# max|ours - ref| / max|ref| over all its positions and vocabulary entries. fp32 matmuls of
# length <= 128 carry relative errors ~sqrt(K) * 6e-8 ~ 1e-6 after a few layers; scaling by
# the largest logit keeps near-zero logits from dominating. 1e-5 is 10x that rounding,
# while a wrong convention (RoPE pairing, scaling branch, GQA mapping, a missing bias)
# changes logits by 1e-3 or more.
TOL = 1e-5
# Our float64 implementation against transformers' LlamaForCausalLM loaded in float64. HF
# still computes RMSNorm (it upcasts to float32) and the RoPE cos/sin (fp32 inv_freq and
# angles) in fp32 whatever the model dtype, which gives ~1e-7 relative differences
# (observed 1.0e-7..1.8e-7); 1e-6 allows for that, while a semantic difference (RoPE pairing,
# a scaling branch, GQA mapping, a bias) shows up at 1e-3 or more.
HF_TOL = 1e-6

B, T = 2, 40


def rope_inv_freq(theta, hd, scaling):
    """Inverse frequencies in float64, with HF's linear and llama3 rope_scaling rules."""
    inv = [1.0 / theta ** (2 * j / hd) for j in range(hd // 2)]
    if not scaling:
        return torch.tensor(inv, dtype=torch.float64)
    kind = scaling.get("rope_type", scaling.get("type"))
    f = scaling["factor"]
    if kind == "linear":
        inv = [x / f for x in inv]
    elif kind == "llama3":
        lo, hi, ctx = scaling["low_freq_factor"], scaling["high_freq_factor"], scaling["original_max_position_embeddings"]
        out = []
        for x in inv:
            wl = 2 * math.pi / x
            if wl < ctx / hi:       # high frequency: unchanged
                out.append(x)
            elif wl > ctx / lo:     # low frequency: interpolated
                out.append(x / f)
            else:                   # between: linear blend in ctx / wavelength
                s = (ctx / wl - lo) / (hi - lo)
                out.append((1 - s) * x / f + s * x)
        inv = out
    else:
        raise ValueError(kind)
    return torch.tensor(inv, dtype=torch.float64)


def rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, inv):
    """Rotate-half RoPE on x (B, T, H, hd) at positions 0..T-1."""
    t = x.shape[1]
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]          # (T, hd/2)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def reference_logits(spec, w, ids):
    """Our own float64 LLaMA forward; w maps HF tensor names to float64 tensors."""
    eps = spec["eps"]
    h = w["model.embed_tokens.weight"][ids]                                      # (B, T, dim)
    nb, nt = ids.shape
    causal = torch.triu(torch.ones(nt, nt, dtype=torch.bool), diagonal=1)
    for i, L in enumerate(spec["layers"]):
        p = f"model.layers.{i}."
        def lin(x, name):
            y = x @ w[p + name + ".weight"].T
            b = w.get(p + name + ".bias")
            return y if b is None else y + b
        if L["attn"]:
            nh, nkv, hd = L["n_heads"], L["n_kv_heads"], L["head_dim"]
            x = rms(h, w[p + "input_layernorm.weight"], eps)
            q = lin(x, "self_attn.q_proj").view(nb, nt, nh, hd)
            k = lin(x, "self_attn.k_proj").view(nb, nt, nkv, hd)
            v = lin(x, "self_attn.v_proj").view(nb, nt, nkv, hd)
            inv = rope_inv_freq(spec["theta"], hd, spec.get("rope_scaling"))
            q, k = rope(q, inv), rope(k, inv)
            k = k.repeat_interleave(nh // nkv, dim=2)    # query head j uses kv head j // (nh/nkv)
            v = v.repeat_interleave(nh // nkv, dim=2)
            s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
            s = s.masked_fill(causal, float("-inf"))
            a = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v).reshape(nb, nt, nh * hd)
            h = h + lin(a, "self_attn.o_proj")
        if L["mlp"]:
            x = rms(h, w[p + "post_attention_layernorm.weight"], eps)
            g, u = lin(x, "mlp.gate_proj"), lin(x, "mlp.up_proj")
            h = h + lin(g / (1 + torch.exp(-g)) * u, "mlp.down_proj")
    h = rms(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if spec["tied"] else w["lm_head.weight"]
    return h @ head.T


BIAS_NAMES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
              "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


def make_weights(spec, seed):
    """Random fp32 weights, rounded to the storage dtype; returns (stored tensors, float64 copies)."""
    g = torch.Generator().manual_seed(seed)
    d, V = spec["dim"], spec["vocab"]
    def rnd(*shape, scale=1.0, offset=0.0):
        return (torch.rand(*shape, generator=g, dtype=torch.float32) * 2 - 1) * scale + offset
    t = {"model.embed_tokens.weight": rnd(V, d), "model.norm.weight": rnd(d, scale=0.2, offset=1.0)}
    if not spec["tied"]:
        t["lm_head.weight"] = rnd(V, d, scale=d ** -0.5)
    for i, L in enumerate(spec["layers"]):
        p = f"model.layers.{i}."
        shapes = {}
        if L["attn"]:
            q, kv = L["n_heads"] * L["head_dim"], L["n_kv_heads"] * L["head_dim"]
            t[p + "input_layernorm.weight"] = rnd(d, scale=0.2, offset=1.0)
            shapes.update({"q": (q, d), "k": (kv, d), "v": (kv, d), "o": (d, q)})
        if L["mlp"]:
            f = L["ffn_dim"]
            t[p + "post_attention_layernorm.weight"] = rnd(d, scale=0.2, offset=1.0)
            shapes.update({"gate": (f, d), "up": (f, d), "down": (d, f)})
        for key, (o, n) in shapes.items():
            t[p + BIAS_NAMES[key] + ".weight"] = rnd(o, n, scale=n ** -0.5)
            if key in L["bias"]:
                t[p + BIAS_NAMES[key] + ".bias"] = rnd(o, scale=0.1)
    dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[spec["dtype"]]
    stored = {k: v.to(dt).contiguous() for k, v in t.items()}
    return stored, {k: v.double() for k, v in stored.items()}


def uniform(spec):
    Ls = spec["layers"]
    return all(L == Ls[0] for L in Ls) and Ls[0]["attn"] and Ls[0]["mlp"] and \
        Ls[0]["head_dim"] * Ls[0]["n_heads"] == spec["dim"] and Ls[0]["bias"] in ([], ["q", "k", "v", "o"],
                                                                                ["q", "k", "v", "o", "gate", "up", "down"])


def write_hf(spec, stored, folder):
    os.makedirs(folder, exist_ok=True)
    L0 = spec["layers"][0]
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": spec["dim"], "intermediate_size": spec.get("ffn_default", L0["ffn_dim"]),
           "num_hidden_layers": len(spec["layers"]), "num_attention_heads": spec.get("heads_default", L0["n_heads"]),
           "num_key_value_heads": spec.get("kv_default", L0["n_kv_heads"]), "vocab_size": spec["vocab"],
           "rms_norm_eps": spec["eps"], "rope_theta": spec["theta"], "rope_scaling": spec.get("rope_scaling"),
           "tie_word_embeddings": spec["tied"], "max_position_embeddings": 128, "bos_token_id": 1,
           "eos_token_id": 2, "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[spec["dtype"]],
           "attention_bias": "o" in L0["bias"] and uniform(spec), "mlp_bias": "down" in L0["bias"] and uniform(spec)}
    if not uniform(spec):
        cfg["prunebench_layers"] = [dict(L) for L in spec["layers"]]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_file(stored, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def write_llama2c(spec, w, path, version):
    """llama2.c file of a uniform bias-free model: q/k rows back in Meta's interleaved order."""
    L0, nl, d, V = spec["layers"][0], len(spec["layers"]), spec["dim"], spec["vocab"]
    nh, nkv, hd, f = L0["n_heads"], L0["n_kv_heads"], L0["head_dim"], L0["ffn_dim"]
    def meta(x, heads):   # inverse of HF's permute: rotate-half rows -> interleaved pairs
        return x.view(heads, 2, hd // 2, d).transpose(1, 2).reshape(heads * hd, d)
    def per_layer(name, fn=lambda x: x):
        return [fn(w[f"model.layers.{i}.{name}"]) for i in range(nl)]
    att, ffn = per_layer("input_layernorm.weight"), per_layer("post_attention_layernorm.weight")
    mats = (per_layer("self_attn.q_proj.weight", lambda x: meta(x, nh)) +
            per_layer("self_attn.k_proj.weight", lambda x: meta(x, nkv)) + per_layer("self_attn.v_proj.weight") +
            per_layer("self_attn.o_proj.weight"))
    mlp = per_layer("mlp.gate_proj.weight") + per_layer("mlp.down_proj.weight") + per_layer("mlp.up_proj.weight")
    emb, fin, seq = w["model.embed_tokens.weight"], w["model.norm.weight"], 64
    hv = [d, f, nl, nh, nkv, V, seq]
    if version == 0:
        if not spec["tied"]:
            hv[5] = -V
        header = struct.pack("7i", *hv)
        freqs = torch.zeros(2 * seq * hd // 2, dtype=torch.float64)   # ignored by our reader
        parts = [emb] + att + mats[:4 * nl] + ffn + mlp + [fin, freqs]
    else:
        header = struct.pack("Ii7iB", 0x616B3432, 1, *hv, int(spec["tied"]))
        header += b"\0" * (256 - len(header))
        parts = att + ffn + [fin, emb] + mats + mlp
    if not spec["tied"]:
        parts.append(w["lm_head.weight"])
    with open(path, "wb") as fh:
        fh.write(header)
        for p in parts:
            fh.write(p.to(torch.float32).numpy().astype("<f4").tobytes())


def hf_logits(folder, ids):
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation="eager")
    with torch.no_grad():
        return m(ids, use_cache=False).logits


def rel_err(x, ref):
    """Per sequence: max |x - ref| / max |ref|; returns the worst sequence."""
    return max(float((x[b] - ref[b]).abs().max() / ref[b].abs().max()) for b in range(ref.shape[0]))


def layer(nh, nkv, hd, ffn, bias=(), attn=True, mlp=True):
    return {"n_heads": nh if attn else 0, "n_kv_heads": nkv if attn else 0, "head_dim": hd, "ffn_dim": ffn if mlp else 0,
            "attn": attn, "mlp": mlp, "bias": list(bias)}


ALL = ["q", "k", "v", "o", "gate", "up", "down"]
MODELS = {
    "gqa_tied_f32": dict(dim=64, vocab=101, eps=1e-5, theta=10000.0, tied=True, dtype="F32",
                         layers=[layer(8, 2, 8, 128)] * 2, llama2c=0),
    "mha_untied_bias_f16": dict(dim=64, vocab=67, eps=1e-6, theta=500000.0, tied=False, dtype="F16",
                                layers=[layer(4, 4, 16, 96, ALL)] * 2),
    "gqa_llama3_bf16": dict(dim=64, vocab=80, eps=1e-5, theta=500000.0, tied=False, dtype="BF16",
                            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                            layers=[layer(4, 2, 16, 80)] * 3),
    "mha_linear_f32": dict(dim=48, vocab=50, eps=1e-5, theta=10000.0, tied=True, dtype="F32",
                           rope_scaling={"rope_type": "linear", "factor": 4.0}, layers=[layer(4, 4, 12, 64)] * 2),
    "untied_plain_f32": dict(dim=32, vocab=60, eps=1e-5, theta=10000.0, tied=False, dtype="F32",
                             layers=[layer(4, 2, 8, 72)] * 3, llama2c=1),
}
PRUNED_LAYERS = [layer(8, 4, 8, 96, ["o", "down"]), layer(0, 0, 8, 40, attn=False), layer(2, 1, 8, 0, ["o"], mlp=False),
                 layer(4, 2, 16, 24, ALL), layer(6, 6, 8, 200, ["q", "gate"])]
for dt in ("F32", "F16", "BF16"):
    MODELS[f"pruned_{dt.lower()}"] = dict(dim=64, vocab=90, eps=1e-5, theta=10000.0, tied=dt != "F16", dtype=dt,
                                          heads_default=8, kv_default=4, ffn_default=128, layers=PRUNED_LAYERS)


def run_ours(dump, model, ids, tmp, extra=()):
    ids_path, out_path = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "logits.f32")
    with open(ids_path, "w") as f:
        f.write(f"{ids.shape[0]} {ids.shape[1]}\n" + " ".join(str(int(i)) for i in ids.flatten()) + "\n")
    try:
        r = subprocess.run([dump, "--threads", "2", "--info", model, "--logits", ids_path, out_path, *extra],
                           capture_output=True, text=True)
    except OSError as e:
        return None, str(e)
    if r.returncode != 0:
        return None, r.stderr.strip()
    V = json.loads(r.stdout)["vocab_size"]
    x = np.fromfile(out_path, dtype="<f4").reshape(ids.shape[0], ids.shape[1], V)
    return torch.from_numpy(x.astype(np.float64)), None


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]   # tolerate a literal ARGS keyword from CMake
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    dump = args[0]
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "model_hf_reference")
    os.makedirs(tmp, exist_ok=True)
    try:
        import transformers  # noqa: F401
        have_hf = True
    except ImportError:
        have_hf = False
        print("note: transformers missing; skipping the cross-check of the reference", file=sys.stderr)
    failures = 0
    for seed, (name, spec) in enumerate(MODELS.items()):
        stored, w = make_weights(spec, seed + 1)
        folder = os.path.join(tmp, name)
        write_hf(spec, stored, folder)
        g = torch.Generator().manual_seed(100 + seed)
        ids = torch.randint(0, spec["vocab"], (B, T), generator=g)
        ref = reference_logits(spec, w, ids)
        if have_hf and uniform(spec):
            e = rel_err(hf_logits(folder, ids), ref)
            ok = e <= HF_TOL
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: float64 reference vs transformers: {e:.2e}")
        targets = [(folder, "hf", ())]
        if "llama2c" in spec:
            path = os.path.join(tmp, f"{name}.v{spec['llama2c']}.bin")
            write_llama2c(spec, w, path, spec["llama2c"])
            targets.append((path, f"llama2c v{spec['llama2c']}", ()))
        targets.append((folder, "hf, KV-cache decode", ("--decode",)))
        for path, what, extra in targets:
            ours, msg = run_ours(dump, path, ids, tmp, extra)
            if ours is None:
                failures += 1
                print(f"FAIL {name} ({what}): pb_dump failed: {msg}")
                continue
            e = rel_err(ours, ref)
            ok = e <= TOL
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name} ({what}): max relative error {e:.2e}")
    print(f"model_hf_reference: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

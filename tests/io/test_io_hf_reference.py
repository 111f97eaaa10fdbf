"""test_io_hf_reference.py — the HF folder reader and writer against HF transformers.

1. Folders written by transformers (save_pretrained, safetensors) in F32/F16/BF16, tied and
   untied, sharded, with biases, llama3 RoPE scaling, and a Mistral one, are loaded by
   pb_model_load (through the pb_dump test tool, tests/tools), which reports what it
   understood and writes every weight back as F32 with pb_hf_save. Every weight must equal the original
   exactly: F16/BF16 values are exactly representable in fp32, so any difference is a bug.
2. Those re-saved folders (F32, and BF16/F16/sharded variants) load in
   LlamaForCausalLM.from_pretrained with no missing or unexpected keys, the same state_dict
   as the original and the same logits (bit for bit: same weights, same code).
3. Hand-written non-uniform folders (config.json with "prunebench_layers", per-layer head
   counts and FFN widths, a layer without attention, one without MLP, FLAP-style o/down
   biases) load with every weight exact, and re-save with the same prunebench_layers.
4. The logits pb_model_forward computes from HF-written folders (GQA, tied BF16, F16 with
   biases and llama3 RoPE scaling, linear RoPE scaling) match transformers' fp32 logits.

usage: test_io_hf_reference.py PATH/TO/pb_dump"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
    from transformers.utils import logging as hf_logging
except ImportError as e:  # CI installs these; a bare machine skips
    print(f"SKIP: python package missing: {e}", file=sys.stderr)
    sys.exit(77)

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
DUMP = sys.argv[1]
BASE = os.path.join(os.environ.get("PB_TMP", tempfile.gettempdir()), "io_hf_reference")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def dump(model_dir, out_dir=None, dtype="f32", shard=0):
    """pb_dump's info JSON for model_dir; with out_dir, the model is also re-saved there."""
    args = [DUMP, "--info", model_dir]
    if out_dir:
        args += ["--save", out_dir, "--dtype", dtype, "--max-shard-bytes", str(shard)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"pb_dump {' '.join(args[1:])} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)


def dump_logits(model_dir, ids):
    """pb_dump's fp32 logits for one sequence of ids, as a (len(ids), vocab) float64 tensor."""
    ids_path, out_path = os.path.join(BASE, "ids.txt"), os.path.join(BASE, "logits.f32")
    with open(ids_path, "w") as f:
        f.write(f"1 {len(ids)}\n" + " ".join(str(i) for i in ids) + "\n")
    args = [DUMP, model_dir, "--logits", ids_path, out_path]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"pb_dump {' '.join(args[1:])} failed ({p.returncode}): {p.stderr}")
    return torch.from_numpy(np.fromfile(out_path, dtype="<f4").astype(np.float64).reshape(len(ids), -1))


def read_folder(d):
    """All tensors of a safetensors folder (single file or shards)."""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(load_file(f))
    return out


def f32(x):
    return float(np.float32(x))


def randomize(model, seed):
    """Every parameter random (norms too), over a few binades, so that a swapped, transposed
    or mis-converted tensor cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 + (i % 5)))


BASE_CFG = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=3, num_attention_heads=8,
                num_key_value_heads=4, vocab_size=96, max_position_embeddings=128, rms_norm_eps=1e-5,
                rope_theta=50000.0, bos_token_id=1, eos_token_id=2)

HF_CASES = {
    # name: (config overrides, torch dtype, max_shard_size, architecture)
    "hf_f32": ({}, torch.float32, None, "llama"),
    "hf_f16": ({}, torch.float16, None, "llama"),
    "hf_bf16": ({}, torch.bfloat16, None, "llama"),
    "hf_tied_f32": (dict(tie_word_embeddings=True), torch.float32, None, "llama"),
    "hf_tied_bf16": (dict(tie_word_embeddings=True), torch.bfloat16, None, "llama"),
    "hf_sharded": ({}, torch.float32, "40KB", "llama"),
    "hf_bias_f16": (dict(attention_bias=True, mlp_bias=True), torch.float16, None, "llama"),
    "hf_llama3": (dict(num_key_value_heads=2, eos_token_id=[2, 3],
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
                  torch.bfloat16, None, "llama"),
    "hf_mistral": (dict(sliding_window=None), torch.float32, None, "mistral"),
}


def make_hf(name, over, dtype, shard, arch, seed):
    d = os.path.join(BASE, name)
    kw = dict(BASE_CFG, **over)
    model = (MistralForCausalLM(MistralConfig(**kw)) if arch == "mistral" else LlamaForCausalLM(LlamaConfig(**kw)))
    randomize(model, seed)
    model = model.to(dtype).eval()
    args = dict(safe_serialization=True)
    if shard:
        args["max_shard_size"] = shard
    model.save_pretrained(d, **args)
    return d, model


def check_info(name, info, cfg, layers):
    """What the loader understood against what config.json says."""
    check(info["format"] == "hf", f"{name}: format {info['format']}")
    check(info["dim"] == cfg["hidden_size"], f"{name}: dim")
    check(info["n_layers"] == cfg["num_hidden_layers"], f"{name}: n_layers")
    check(info["vocab_size"] == cfg["vocab_size"], f"{name}: vocab_size")
    check(info["max_seq_len"] == cfg.get("max_position_embeddings", 2048), f"{name}: max_seq_len")
    # stored as float32: compare with the float32 rounding of the JSON value
    check(f32(info["norm_eps"]) == f32(cfg["rms_norm_eps"]), f"{name}: norm_eps {info['norm_eps']}")
    check(f32(info["rope_theta"]) == f32(cfg.get("rope_theta", 10000.0)), f"{name}: rope_theta")
    check(info["tied"] == cfg.get("tie_word_embeddings", False), f"{name}: tied")
    check(info["lm_head_is_tok_emb"] == info["tied"], f"{name}: lm_head aliasing")
    eos = cfg.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    check(info["eos_id"] == (-1 if eos is None else eos), f"{name}: eos_id")
    check(info["bos_id"] == (-1 if cfg.get("bos_token_id") is None else cfg["bos_token_id"]), f"{name}: bos_id")
    rs, got_rs = cfg.get("rope_scaling"), info["rope_scaling"]
    if rs:
        check(got_rs["type"] == {"llama3": 1, "linear": 2}[rs["rope_type"]], f"{name}: rope type")
        check(f32(got_rs["factor"]) == f32(rs["factor"]), f"{name}: rope factor")
        if rs["rope_type"] == "llama3":
            check(f32(got_rs["low_freq_factor"]) == f32(rs["low_freq_factor"]), f"{name}: low_freq_factor")
            check(f32(got_rs["high_freq_factor"]) == f32(rs["high_freq_factor"]), f"{name}: high_freq_factor")
            check(got_rs["original_max_position"] == rs["original_max_position_embeddings"], f"{name}: orig max pos")
    else:
        check(got_rs["type"] == 0, f"{name}: rope scaling should be none")
    for l, (got, want) in enumerate(zip(info["layers"], layers)):
        for k in ("n_heads", "n_kv_heads", "ffn_dim", "attn", "mlp"):
            check(got[k] == want[k], f"{name}: layer {l} {k} {got[k]} != {want[k]}")
        if want["attn"]:
            check(got["head_dim"] == want["head_dim"], f"{name}: layer {l} head_dim")
        check(sorted(got["bias"]) == sorted(want["bias"]), f"{name}: layer {l} bias {got['bias']} != {want['bias']}")


def uniform_layers(cfg):
    h = cfg["num_attention_heads"]
    bias = (["q", "k", "v", "o"] if cfg.get("attention_bias") else []) + \
           (["gate", "up", "down"] if cfg.get("mlp_bias") else [])
    return [dict(n_heads=h, n_kv_heads=cfg.get("num_key_value_heads", h), head_dim=cfg["hidden_size"] // h,
                 ffn_dim=cfg["intermediate_size"], attn=True, mlp=True, bias=bias)] * cfg["num_hidden_layers"]


def compare_weights(name, ref, got, tied):
    """ref: tensors of the original folder; got: our F32 re-save. Exact equality."""
    ref = {k: v for k, v in ref.items() if not k.endswith("rotary_emb.inv_freq")}
    if tied:
        ref.pop("lm_head.weight", None)
    check(set(ref) == set(got), f"{name}: tensor names differ: {sorted(set(ref) ^ set(got))}")
    for k in sorted(set(ref) & set(got)):
        check(got[k].dtype == torch.float32, f"{name}: {k} saved as {got[k].dtype}")
        check(got[k].shape == ref[k].shape, f"{name}: {k} shape {tuple(got[k].shape)} != {tuple(ref[k].shape)}")
        if got[k].shape == ref[k].shape:
            check(torch.equal(got[k], ref[k].float()), f"{name}: {k} values differ")


def header_aligned(d):
    """True when every safetensors file of d starts its data at a multiple of 4."""
    for f in glob.glob(os.path.join(d, "*.safetensors")):
        with open(f, "rb") as fh:
            if (8 + int.from_bytes(fh.read(8), "little")) % 4:
                return False
    return True


def hf_reload(name, out, model, dtype, orig_dir):
    """Our re-saved folder in transformers: no missing or unexpected keys, the original
    state_dict, and the same logits as transformers gives for the original folder (both
    loaded the same way, so only the weight files differ: bitwise equality is expected)."""
    cls = type(model)
    back, info = cls.from_pretrained(out, torch_dtype=dtype, output_loading_info=True)
    check(not info["missing_keys"] and not info["unexpected_keys"],
          f"{name}: transformers loading info {info}")
    sa, sb = model.state_dict(), back.state_dict()
    sa = {k: v for k, v in sa.items() if not k.endswith("rotary_emb.inv_freq")}
    sb = {k: v for k, v in sb.items() if not k.endswith("rotary_emb.inv_freq")}
    check(set(sa) == set(sb), f"{name}: HF state_dict keys differ: {sorted(set(sa) ^ set(sb))}")
    for k in sorted(set(sa) & set(sb)):
        check(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), f"{name}: HF reload {k} differs")
    check(back.config.tie_word_embeddings == model.config.tie_word_embeddings, f"{name}: tie flag lost")
    check(getattr(back.config, "rope_scaling", None) == getattr(model.config, "rope_scaling", None),
          f"{name}: rope_scaling {getattr(back.config, 'rope_scaling', None)}")
    ref = cls.from_pretrained(orig_dir, torch_dtype=dtype)
    ids = torch.randint(0, model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(3))
    # in fp32: torch's CPU matmul has no fp16 kernel (the fp32 copies are exact)
    with torch.no_grad():
        la, lb = ref.float().eval()(ids).logits, back.float().eval()(ids).logits
    check(torch.equal(la, lb), f"{name}: logits differ after the HF round trip (max {(la - lb).abs().max()})")


def run_hf_cases():
    for seed, (name, (over, dtype, shard, arch)) in enumerate(HF_CASES.items()):
        d, model = make_hf(name, over, dtype, shard, arch, seed)
        cfg = json.load(open(os.path.join(d, "config.json")))
        if shard:
            check(os.path.exists(os.path.join(d, "model.safetensors.index.json")), f"{name}: HF wrote no shards")
        out = os.path.join(BASE, name + "_pb_f32")
        info = dump(d, out, "f32")
        check_info(name, info, cfg, uniform_layers(cfg))
        tied = cfg.get("tie_word_embeddings", False)
        compare_weights(name, read_folder(d), read_folder(out), tied)
        # memory mapping: F32 tensors at 4-byte-aligned offsets are used in place, others copied
        if dtype == torch.float32 and header_aligned(d):
            check(info["n_mapped_tensors"] == info["n_tensors"] and info["n_maps"] >= 1,
                  f"{name}: {info['n_mapped_tensors']}/{info['n_tensors']} tensors mapped")
        if dtype != torch.float32:
            check(info["n_mapped_tensors"] == 0 and info["n_maps"] == 0, f"{name}: converted tensors reported mapped")
        # our F32 save loads back into transformers (re-loaded in the original dtype: exact,
        # as the values came from that dtype)
        hf_reload(name, out, model, dtype, d)
        # and saves in the original dtype / sharded load there too
        tag = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[dtype]
        out2 = os.path.join(BASE, name + "_pb_" + tag + "_sharded")
        dump(out, out2, tag, 30000)
        check(len(glob.glob(os.path.join(out2, "model-*-of-*.safetensors"))) > 1, f"{name}: pb save not sharded")
        hf_reload(name + " (pb sharded " + tag + ")", out2, model, dtype, d)
        saved = json.load(open(os.path.join(out, "config.json")))
        check("prunebench_layers" not in saved, f"{name}: uniform model saved with prunebench_layers")
        check(saved["architectures"] == ["LlamaForCausalLM"] and saved["model_type"] == "llama",
              f"{name}: saved architecture")


# ---- logits: what the loader built means what transformers means by the same folder --------

LOGIT_CASES = {
    "lg_f32_gqa": (dict(num_key_value_heads=2), torch.float32),
    "lg_bf16_tied": (dict(tie_word_embeddings=True), torch.bfloat16),
    "lg_f16_bias_llama3": (dict(attention_bias=True, mlp_bias=True,
                                rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
                           torch.float16),
    "lg_linear_rope": (dict(rope_scaling={"type": "linear", "factor": 2.0}), torch.float32),
}


def run_logit_cases():
    for seed, (name, (over, dtype)) in enumerate(LOGIT_CASES.items()):
        d = os.path.join(BASE, name)
        kw = dict(BASE_CFG, initializer_range=0.15, **over)
        model = LlamaForCausalLM(LlamaConfig(**kw))
        g = torch.Generator().manual_seed(100 + seed)
        with torch.no_grad():  # norms away from 1, biases non-zero: both must be applied
            for n, p in model.named_parameters():
                if n.endswith("norm.weight"):
                    p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
                elif n.endswith(".bias"):
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        model.to(dtype).save_pretrained(d, safe_serialization=True)
        ids = torch.randint(0, kw["vocab_size"], (40,), generator=g).tolist()
        ours = dump_logits(d, ids)
        # transformers in fp32 on the same (exactly widened) weights
        ref_model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
        with torch.no_grad():
            ref = ref_model(torch.tensor([ids])).logits[0].double()
        # both sides are fp32 with different summation orders over <= 172-term dot products
        # and 3 layers: ~1e-6 relative per op, so 1e-4 of the logit scale is ample and still
        # far below what a wrong tensor, a missing bias or a wrong RoPE would cause (O(1))
        err = (ours - ref).abs().max().item()
        scale = ref.abs().max().item()
        print(f"{name}: max logit diff {err:.3g} (scale {scale:.3g})", file=sys.stderr)
        check(err <= 1e-4 * (1 + scale), f"{name}: logits differ from transformers by {err} (scale {scale})")


# ---- hand-written non-uniform folders -------------------------------------------------------

def nonuniform_case(name, layers, dtype, seed, tied=False, extra=None):
    d = os.path.join(BASE, name)
    os.makedirs(d)
    dim, vocab = 64, 96
    g = torch.Generator().manual_seed(seed)
    t = {}

    def rnd(*shape):
        return (torch.randn(shape, generator=g) * 0.7).to(dtype)

    t["model.embed_tokens.weight"] = rnd(vocab, dim)
    t["model.norm.weight"] = rnd(dim)
    if not tied:
        t["lm_head.weight"] = rnd(vocab, dim)
    for l, s in enumerate(layers):
        p = f"model.layers.{l}."
        q, kv, f = s["n_heads"] * s["head_dim"], s["n_kv_heads"] * s["head_dim"], s["ffn_dim"]
        if s["attn"]:
            t[p + "input_layernorm.weight"] = rnd(dim)
            for w, r, c in (("q", q, dim), ("k", kv, dim), ("v", kv, dim), ("o", dim, q)):
                t[p + f"self_attn.{w}_proj.weight"] = rnd(r, c)
                if w in s["bias"]:
                    t[p + f"self_attn.{w}_proj.bias"] = rnd(r)
            t[p + "self_attn.rotary_emb.inv_freq"] = torch.ones(s["head_dim"] // 2)  # harmless legacy buffer
        if s["mlp"]:
            t[p + "post_attention_layernorm.weight"] = rnd(dim)
            for w, r, c in (("gate", f, dim), ("up", f, dim), ("down", dim, f)):
                t[p + f"mlp.{w}_proj.weight"] = rnd(r, c)
                if w in s["bias"]:
                    t[p + f"mlp.{w}_proj.bias"] = rnd(r)
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=dim, intermediate_size=172,
               num_hidden_layers=len(layers), num_attention_heads=8, num_key_value_heads=4, vocab_size=vocab,
               rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=tied, bos_token_id=None,
               eos_token_id=2, prunebench_layers=layers, **(extra or {}))
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)

    out = os.path.join(BASE, name + "_pb_f32")
    info = dump(d, out, "f32")
    check_info(name, info, cfg, layers)
    compare_weights(name, t, read_folder(out), tied)
    saved = json.load(open(os.path.join(out, "config.json")))
    got = saved.get("prunebench_layers")
    check(got is not None and len(got) == len(layers), f"{name}: re-saved config lacks prunebench_layers")
    for l, (a, b) in enumerate(zip(got or [], layers)):
        for k in ("n_heads", "n_kv_heads", "ffn_dim", "attn", "mlp"):
            check(a[k] == b[k], f"{name}: re-saved layer {l} {k}")
        check(sorted(a["bias"]) == sorted(b["bias"]), f"{name}: re-saved layer {l} bias")
    # the re-saved folder loads to the same thing again
    info2 = dump(out)
    check(info2["layers"] == info["layers"], f"{name}: layers differ after re-save")


def L(h, kv, hd, f, attn=True, mlp=True, bias=()):
    return dict(n_heads=h if attn else 0, n_kv_heads=kv if attn else 0, head_dim=hd, ffn_dim=f if mlp else 0,
                attn=attn, mlp=mlp, bias=list(bias))


def run_nonuniform_cases():
    nonuniform_case("nu_width_bf16", [L(8, 4, 8, 172), L(6, 3, 8, 100), L(2, 1, 8, 7), L(8, 8, 8, 172)],
                    torch.bfloat16, 10)
    nonuniform_case("nu_depth_f32", [L(8, 4, 8, 172), L(0, 0, 8, 120, attn=False), L(8, 4, 8, 0, mlp=False),
                                     L(0, 0, 8, 0, attn=False, mlp=False)], torch.float32, 11)
    nonuniform_case("nu_flap_f16", [L(8, 4, 8, 172, bias=["o", "down"]), L(4, 2, 8, 90, bias=["o"]),
                                    L(8, 4, 8, 60, bias=["down"])], torch.float16, 12, tied=True)
    nonuniform_case("nu_partial_bias_f32", [L(8, 4, 8, 172, bias=["q", "k", "v", "o", "up"]),
                                            L(8, 4, 8, 172, bias=["gate"])], torch.float32, 13)


def main():
    shutil.rmtree(BASE, ignore_errors=True)
    os.makedirs(BASE)
    torch.manual_seed(0)
    run_hf_cases()
    run_logit_cases()
    run_nonuniform_cases()
    if failures:
        print(f"io_hf_reference: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("io_hf_reference: ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

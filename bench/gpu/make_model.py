#!/usr/bin/env python3
"""make_model.py — LLaMA-7B-shaped models with random weights, as Hugging Face folders, for the
speed benchmarks (issue 7, part 5): speed depends on shape, not on what the weights learned.

    make_model.py --out DIR [--models dense,depth,width] [--tiny] [--device cuda|cpu]
                  [--dtype bf16|f16|f32] [--seed 0] [--tokenizer FILE] [--width-ratio R]

Writes DIR/<name>/ with config.json, model-0000N-of-0000M.safetensors (shards of <= 2 GiB),
model.safetensors.index.json and, with --tokenizer, a copy of tokenizer.model (`prunebench ppl`
needs one; the LLaMA SentencePiece model at ../shared/data/tokenizer/tokenizer.model):
  dense   LLaMA-7B: 32 layers, dim 4096, 32 heads (head_dim 128, MHA), FFN 11008, vocab 32000,
          untied head, context 2048, rms eps 1e-6 — 6.74B parameters.
  depth   Shortened LLaMA's "20%" setting: 6 of the 32 blocks removed (blocks 10,13,24,25,26,27,
          the PPL criterion's choice on LLaMA-7B in shortened-llama.md §1.4). The paper's labels are
          nominal: 6 blocks is 18.0% of all parameters (5.52B), the size that paper compares against
          the 20% width-pruned baselines; 7 blocks would be 21%. Which blocks go does not change
          the speed; the count does.
  width   LLM-Pruner's shape: layers 4..29 (26 of 32; block_*_layer_start 4, end 30) each lose the
          same ratio r of their heads and FFN channels, with LLM-Pruner's rounding
          (n_prune = C - int(C (1 - r)), heads removed = n_prune // 128), r chosen as the value in
          [0.15, 0.35] whose total comes closest to 20% of all parameters (r = 0.25, the README's
          setting, removes 19.5%). Written with "prunebench_layers" (authoritative per-layer shapes).
--tiny: the same recipes at a CPU-sized shape (8 layers, dim 128, 4 heads, FFN 344, vocab 32000
so that the LLaMA tokenizer still fits) for dry runs without a GPU.

Weights: N(0, 0.02) (LlamaConfig's initializer_range), norms 1. Every tensor is drawn from its
own generator seeded by (seed, dense layer index, tensor name), so the depth model's blocks are
the dense model's blocks and the width model's layers are slices of them (first heads / first
channels kept), and a rerun writes identical files. Generated on --device (cuda: seconds for
6.7B values), moved to the host one layer at a time, written in shards.
Prints a JSON summary (per model: layers, params, params_no_embed, removed fraction, bytes)."""
import argparse
import json
import os
import shutil
import sys
import time
import zlib

import torch
from safetensors.torch import save_file

FULL = dict(dim=4096, layers=32, heads=32, kv_heads=32, head_dim=128, ffn=11008, vocab=32000, ctx=2048)
TINY = dict(dim=128, layers=8, heads=4, kv_heads=4, head_dim=32, ffn=344, vocab=32000, ctx=2048)
DEPTH_BLOCKS = {32: [10, 13, 24, 25, 26, 27], 8: [3, 5]}
SHARD_BYTES = 2 << 30
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
ST_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}


def layer_params(s, heads, kv, ffn):
    """Parameters of one block with these shapes (bias-free, two norms)."""
    hd, d = s["head_dim"], s["dim"]
    return d * heads * hd * 2 + d * kv * hd * 2 + 3 * d * ffn + 2 * d


def total_params(s, layers):
    """layers: list of (heads, kv, ffn). Embedding + untied head + final norm + blocks."""
    return 2 * s["vocab"] * s["dim"] + s["dim"] + sum(layer_params(s, *L) for L in layers)


def llm_pruner_counts(s, r):
    """Heads and channels LLM-Pruner keeps in a pruned layer at group ratio r."""
    c_att = s["heads"] * s["head_dim"]
    n_att = c_att - int(c_att * (1 - r))
    heads = s["heads"] - n_att // s["head_dim"]
    ffn = s["ffn"] - (s["ffn"] - int(s["ffn"] * (1 - r)))
    # LLaMA-7B is MHA: k/v heads go with their query heads (a KV group is one head)
    return heads, heads if s["kv_heads"] == s["heads"] else s["kv_heads"], ffn


def width_plan(s, ratio=None, target=0.20):
    """Per-layer (heads, kv, ffn) of the width-pruned model and the ratio used."""
    L = s["layers"]
    start, end = round(4 * L / 32), round(30 * L / 32)   # LLM-Pruner's 4..29 of 32
    dense = [(s["heads"], s["kv_heads"], s["ffn"])] * L
    p0 = total_params(s, dense)

    def plan(r):
        pruned = llm_pruner_counts(s, r)
        return [pruned if start <= i < end else dense[i] for i in range(L)]
    if ratio is None:
        grid = [0.15 + i * 1e-4 for i in range(2001)]
        ratio = min(grid, key=lambda r: abs(1 - total_params(s, plan(r)) / p0 - target))
    return plan(ratio), ratio, (start, end)


def seeded(seed, layer, name, shape, device, std=0.02):
    g = torch.Generator(device=device)
    g.manual_seed(zlib.crc32(f"{seed}/{layer}/{name}".encode()) + (seed << 32))
    return torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * std


class ShardWriter:
    """Collects host tensors and writes them as safetensors shards of <= SHARD_BYTES."""

    def __init__(self, folder, n_total_bytes):
        self.folder, self.cur, self.cur_bytes, self.files, self.map = folder, {}, 0, [], {}
        self.n_shards = max(1, -(-n_total_bytes // SHARD_BYTES))
        self.total = 0

    def add(self, name, t):
        nb = t.numel() * t.element_size()
        if self.cur and self.cur_bytes + nb > SHARD_BYTES:
            self.flush()
        self.cur[name] = t.contiguous()
        self.cur_bytes += nb
        self.total += nb

    def flush(self):
        if not self.cur:
            return
        self.files.append(list(self.cur))   # names only: the host copies are freed once written
        name = f"shard-{len(self.files):05d}.tmp"
        save_file(self.cur, os.path.join(self.folder, name), metadata={"format": "pt"})
        self.cur, self.cur_bytes = {}, 0

    def close(self):
        self.flush()
        n = len(self.files)
        for i, names in enumerate(self.files):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(os.path.join(self.folder, f"shard-{i + 1:05d}.tmp"), os.path.join(self.folder, final))
            for k in names:
                self.map[k] = final
        self.files = []
        with open(os.path.join(self.folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": self.total}, "weight_map": self.map}, f, indent=1)


def write_model(name, s, layers, src_index, folder, a, dt):
    """layers[i] = (heads, kv, ffn) of output layer i, whose weights are the first heads/channels
    of dense layer src_index[i]."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    d, hd, V = s["dim"], s["head_dim"], s["vocab"]
    uniform = all(L == (s["heads"], s["kv_heads"], s["ffn"]) for L in layers)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": d, "intermediate_size": s["ffn"], "num_hidden_layers": len(layers),
           "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "head_dim": hd,
           "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None,
           "tie_word_embeddings": False, "max_position_embeddings": s["ctx"], "bos_token_id": 1,
           "eos_token_id": 2, "initializer_range": 0.02, "attention_bias": False, "mlp_bias": False,
           "torch_dtype": ST_DTYPES[a.dtype], "use_cache": True}
    if not uniform:
        cfg["prunebench_layers"] = [{"n_heads": h, "n_kv_heads": kv, "head_dim": hd, "ffn_dim": f, "attn": True,
                                     "mlp": True, "bias": []} for h, kv, f in layers]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(folder, "tokenizer.model"))

    params = total_params(s, layers)
    w = ShardWriter(folder, params * torch.tensor([], dtype=dt).element_size())
    dev = a.device

    def put(n, t):
        w.add(n, t.to(dt).to("cpu"))
    put("model.embed_tokens.weight", seeded(a.seed, -1, "embed", (V, d), dev))
    for i, ((h, kv, f), src) in enumerate(zip(layers, src_index)):
        p = f"model.layers.{i}."
        # dense tensors of layer src, then the kept rows / columns (LLM-Pruner keeps the rest
        # in order; which heads is immaterial for speed)
        full_q = s["heads"] * hd
        full_kv = s["kv_heads"] * hd
        put(p + "input_layernorm.weight", torch.ones(d, device=dev))
        put(p + "self_attn.q_proj.weight", seeded(a.seed, src, "q", (full_q, d), dev)[:h * hd])
        put(p + "self_attn.k_proj.weight", seeded(a.seed, src, "k", (full_kv, d), dev)[:kv * hd])
        put(p + "self_attn.v_proj.weight", seeded(a.seed, src, "v", (full_kv, d), dev)[:kv * hd])
        put(p + "self_attn.o_proj.weight", seeded(a.seed, src, "o", (d, full_q), dev)[:, :h * hd])
        put(p + "post_attention_layernorm.weight", torch.ones(d, device=dev))
        put(p + "mlp.gate_proj.weight", seeded(a.seed, src, "gate", (s["ffn"], d), dev)[:f])
        put(p + "mlp.up_proj.weight", seeded(a.seed, src, "up", (s["ffn"], d), dev)[:f])
        put(p + "mlp.down_proj.weight", seeded(a.seed, src, "down", (d, s["ffn"]), dev)[:, :f])
    put("model.norm.weight", torch.ones(d, device=dev))
    put("lm_head.weight", seeded(a.seed, -1, "lm_head", (V, d), dev))
    w.close()
    emb = 2 * V * d
    return {"name": name, "path": folder, "layers": len(layers), "params": params, "params_no_embed": params - emb,
            "weight_bytes": w.total, "uniform": uniform,
            "shapes": sorted({f"{h}h/{kv}kv/{f}ffn" for h, kv, f in layers})}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="dense,depth,width")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer")
    ap.add_argument("--width-ratio", type=float, help="LLM-Pruner group ratio (default: solved for 20%% of params)")
    a = ap.parse_args()
    s = TINY if a.tiny else FULL
    dt = DTYPES[a.dtype]
    L = s["layers"]
    dense = [(s["heads"], s["kv_heads"], s["ffn"])] * L
    p0 = total_params(s, dense)
    out = {"shape": "tiny" if a.tiny else "llama-7b", "dtype": a.dtype, "device": a.device, "models": {}}
    t0 = time.time()
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        t1 = time.time()
        if name == "dense":
            layers, src, extra = dense, list(range(L)), {}
        elif name == "depth":
            drop = DEPTH_BLOCKS[L]
            src = [i for i in range(L) if i not in drop]
            layers, extra = [dense[i] for i in src], {"removed_blocks": drop}
        elif name == "width":
            layers, r, (st, en) = width_plan(s, a.width_ratio)
            src = list(range(L))
            extra = {"llm_pruner_ratio": round(r, 4), "pruned_layers": [st, en - 1]}
        else:
            sys.exit(f"make_model.py: unknown model '{name}' (dense, depth, width)")
        info = write_model(name, s, layers, src, os.path.join(a.out, name), a, dt)
        info.update(extra)
        info["removed_fraction"] = round(1 - info["params"] / p0, 4)
        info["seconds"] = round(time.time() - t1, 1)
        out["models"][name] = info
        print(f"make_model: {name}: {info['params'] / 1e9:.3f}B params ({100 * info['removed_fraction']:.1f}% removed), "
              f"{info['weight_bytes'] / 2**30:.2f} GiB, {info['seconds']} s", file=sys.stderr, flush=True)
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

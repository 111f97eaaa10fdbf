#!/usr/bin/env python3
"""hf_reference.py — the reference stack of issue 7's benchmarks: PyTorch + Hugging Face
transformers LlamaForCausalLM (attn_implementation="sdpa", the model's weights in --dtype) on
the same HF folder prunebench reads (bench/gpu/make_model.py writes them).

    hf_reference.py MODEL_DIR --out FILE.json [--device cuda] [--dtype bf16]
        [--score-seq 128,2048] [--score-tokens 131072] [--score-batch-tokens 16384]
        [--gen-batch 1,64,256] [--prompt-len 128] [--gen-len 128] [--reps 3] [--warmup 1]
        [--bandwidth] [--budget-s SECONDS] [--attn sdpa|eager]

Measures, each after untimed warm-up, with the device synchronised around every timed region:
  score  PPL scoring as the papers' evaluator (LLM-Pruner's PPLMetric) does it: forward of B
         windows of T random tokens (use_cache=False), then the log-softmax NLL of the labels in
         fp32 (CrossEntropyLoss on the shifted logits, upcast). B = --score-batch-tokens / T
         (16384 tokens per forward by default: B = 128 at T = 128 and 8 at T = 2048 — the
         logits then take 2.1 GB in fp32, well inside the card, and both lengths run the same
         tokens per forward; prunebench gets the same --batch). positions_per_s = windows * T /
         seconds over --score-tokens positions (the same budget prunebench scores).
  gen    generate(): greedy, min_new_tokens = max_new_tokens = --gen-len (EOS cannot stop it),
         random prompts of --prompt-len tokens, batch sizes --gen-batch. Like `prunebench bench`:
         prefill_s = generate() with 1 new token (prompt pass + first token), total_s = the whole
         generation, decode_ms_per_token = (total - prefill) / (gen_len - 1), tokens_per_s =
         batch * gen_len / total_s; mean (and population std) over --reps runs. An out-of-memory
         batch is recorded as an error and the others still run.
  bandwidth (--bandwidth, CUDA only) a 4 GiB device-to-device copy timed with CUDA events
         (median of 20): bytes read + written per second — the floor of batch-1 decode is the
         weight bytes it must read per token over this figure (report.py).
The model is built from config.json on the device and the safetensors shards are loaded into it
(no from_pretrained, whose arguments differ between transformers 4.44 and 5.x). A folder whose
config.json has "prunebench_layers" (a width-pruned model) gets each layer's projections and
head counts replaced by its own shapes before loading, as LLM-Pruner's pruned models are built.
The JSON file is rewritten after every measurement, so a run stopped by a time limit still
leaves what it measured. Runs on CPU too (--device cpu --dtype f32, for dry runs)."""
import argparse
import glob
import json
import math
import os
import statistics
import sys
import time

import torch

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def shard_files(folder):
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        return sorted({os.path.join(folder, f) for f in json.load(open(idx))["weight_map"].values()})
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise SystemExit(f"hf_reference: no safetensors in {folder}")
    return files


def apply_layer_shapes(model, layers, dtype, device):
    """Replaces each decoder layer's projections by the shapes of prunebench_layers (what
    LLM-Pruner's pruned checkpoints hold) and sets the attention's head counts: transformers
    4.44 views q/k/v with self.num_heads / num_key_value_heads, 5.x infers the head count
    from the projection (view(..., -1, head_dim)) and repeats KV heads by
    num_key_value_groups, so all three are set."""
    import torch.nn as nn
    d = model.config.hidden_size
    for i, (L, spec) in enumerate(zip(model.model.layers, layers)):
        if not spec.get("attn", True) or not spec.get("mlp", True):
            raise SystemExit(f"hf_reference: layer {i} has no attention or MLP: not built here")
        h, kv, hd, f = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"], spec["ffn_dim"]
        bias = set(spec.get("bias", []))
        a, m = L.self_attn, L.mlp

        def lin(i_, o_, b):
            return nn.Linear(i_, o_, bias=b, device=device, dtype=dtype)
        a.q_proj, a.k_proj = lin(d, h * hd, "q" in bias), lin(d, kv * hd, "k" in bias)
        a.v_proj, a.o_proj = lin(d, kv * hd, "v" in bias), lin(h * hd, d, "o" in bias)
        a.num_heads, a.num_key_value_heads, a.num_key_value_groups, a.head_dim = h, kv, h // kv, hd
        a.scaling = hd ** -0.5   # 5.x computes it once from the config's head_dim
        m.gate_proj, m.up_proj, m.down_proj = lin(d, f, "gate" in bias), lin(d, f, "up" in bias), lin(f, d, "down" in bias)
        m.intermediate_size = f


def build_model(folder, device, dtype, attn="sdpa"):
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
    # attn_implementation: a config kwarg in 4.44 and 5.x; the setter too, where it exists
    cfg = LlamaConfig.from_pretrained(folder, attn_implementation=attn)
    try:
        cfg._attn_implementation = attn
    except (AttributeError, TypeError):
        pass
    on_device_init = device.startswith("cuda") and hasattr(torch.device(device), "__enter__")
    prev = torch.get_default_dtype()
    t0 = time.time()
    if on_device_init:
        # torch >= 2: parameters are created on the GPU in the target dtype (a 7B model in
        # seconds, without a 27 GB fp32 host copy); the random init is overwritten below
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(prev)
    else:
        model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype)
    layers = getattr(cfg, "prunebench_layers", None)
    if layers:
        apply_layer_shapes(model, layers, dtype, device)
    want = set(model.state_dict().keys())
    got = set()
    for f in shard_files(folder):
        sd = load_file(f, device=device if device.startswith("cuda") else "cpu")
        unexpected = set(sd) - want
        if unexpected:
            raise SystemExit(f"hf_reference: {f}: tensors the model does not have: {sorted(unexpected)[:5]}")
        model.load_state_dict(sd, strict=False)
        got |= set(sd)
        del sd
    missing = sorted(k for k in want - got if "rotary" not in k)
    if missing:
        raise SystemExit(f"hf_reference: {folder}: tensors not in the files: {missing[:5]}")
    model.eval()
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != attn and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(attn)
        impl = getattr(model.config, "_attn_implementation", None)
    if impl != attn:
        print(f"hf_reference: WARNING: attention implementation is {impl}, not {attn}", file=sys.stderr)
    return model, impl, time.time() - t0


class Recorder:
    def __init__(self, path, base):
        self.path, self.data = path, base

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


def bandwidth(device, rec, nbytes=4 << 30, reps=20):
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    src.random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        dst.copy_(src)
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) / 1e3)
    ok = bool(torch.equal(dst[: 1 << 20], src[: 1 << 20]))
    t = statistics.median(times)
    rec.data["bandwidth"] = {"bytes_copied": nbytes, "seconds_median": t, "bytes_per_s": 2 * nbytes / t,
                             "counted": "bytes read + bytes written", "reps": reps, "copy_checked": ok}
    del src, dst
    torch.cuda.empty_cache()
    rec.save()


def score(model, device, V, T, total, batch_tokens, rec, seed=0):
    B = max(1, batch_tokens // T)
    n_batches = max(1, math.ceil(total / (B * T)))
    g = torch.Generator(device="cpu").manual_seed(seed + T)
    data = torch.randint(3, V, (n_batches + 1, B, T), generator=g).to(device)
    ce = torch.nn.CrossEntropyLoss(reduction="none")

    def step(x):
        logits = model(input_ids=x, use_cache=False).logits
        shift = logits[:, :-1, :].float().reshape(-1, V)
        return ce(shift, x[:, 1:].reshape(-1)).sum()
    step(data[-1])                     # warm-up: kernels chosen, workspace allocated
    sync(device)
    t0 = time.time()
    acc = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(n_batches):
        acc += step(data[i]).double()
    sync(device)
    secs = time.time() - t0
    positions = n_batches * B * T
    r = {"seq_len": T, "batch": B, "windows": n_batches * B, "positions": positions, "seconds": secs,
         "positions_per_s": positions / secs, "nll_mean": float(acc) / (n_batches * B * (T - 1))}
    rec.data["score"].append(r)
    rec.save()
    print(f"hf_reference: score T={T} B={B}: {r['positions_per_s']:.0f} positions/s ({secs:.2f} s)",
          file=sys.stderr, flush=True)


def generate(model, device, V, B, P, G, reps, warmup, rec, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed + B)
    x = torch.randint(3, V, (B, P), generator=g).to(device)
    mask = torch.ones_like(x)

    def run(n):
        sync(device)
        t0 = time.time()
        out = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             num_beams=1, pad_token_id=0, use_cache=True)
        sync(device)
        if out.shape != (B, P + n):
            raise RuntimeError(f"generate returned shape {tuple(out.shape)}, expected {(B, P + n)}")
        return time.time() - t0
    r = {"batch": B, "prompt_len": P, "gen_len": G, "reps": reps, "warmup": warmup}
    try:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            run(1)
            run(G)
        pre = [run(1) for _ in range(reps)]
        tot = [run(G) for _ in range(reps)]
        r.update(prefill_s=statistics.mean(pre), total_s=statistics.mean(tot), total_s_std=statistics.pstdev(tot))
        r["decode_ms_per_token"] = 1e3 * (r["total_s"] - r["prefill_s"]) / max(1, G - 1)
        r["tokens_per_s"] = B * G / r["total_s"]
        if device.startswith("cuda"):
            r["peak_mem_bytes"] = torch.cuda.max_memory_allocated()
        msg = f"{r['decode_ms_per_token']:.2f} ms/token decode, {r['tokens_per_s']:.0f} tokens/s"
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        r["error"] = str(e).splitlines()[0][:300]
        msg = "ERROR " + r["error"]
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    rec.data["gen"].append(r)
    rec.save()
    print(f"hf_reference: generate batch {B}: {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--score-seq", default="128,2048")
    ap.add_argument("--score-tokens", type=int, default=131072)
    ap.add_argument("--score-batch-tokens", type=int, default=16384)
    ap.add_argument("--gen-batch", default="1,64,256")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--gen-len", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--bandwidth", action="store_true")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (eager for torch < 2.1.1: dry runs here)")
    ap.add_argument("--budget-s", type=float, default=0, help="skip measurements that would start after this")
    a = ap.parse_args()
    t_start = time.time()
    import transformers
    dev, dt = a.device, DTYPES[a.dtype]
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("hf_reference: --device cuda but torch sees no GPU")
    rec = Recorder(a.out, {"stack": "hf", "model": os.path.abspath(a.model), "name": os.path.basename(a.model.rstrip("/")),
                           "device": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
                           "torch": torch.__version__, "transformers": transformers.__version__, "dtype": a.dtype,
                           "score": [], "gen": [], "skipped": []})
    if a.bandwidth and dev.startswith("cuda"):
        bandwidth(dev, rec)
    model, impl, load_s = build_model(a.model, dev, dt, a.attn)
    n = sum(p.numel() for p in model.parameters())
    emb = model.model.embed_tokens.weight.numel()
    es = torch.tensor([], dtype=dt).element_size()
    V = model.config.vocab_size
    rec.data.update(attn_implementation=impl, load_s=load_s, params=n, weight_bytes=n * es,
                    # batch-1 decode reads every weight once per token except the embedding table
                    # (one row); norms are counted at the weight dtype (they are 0.004% of it)
                    weight_bytes_read_per_token=(n - emb) * es, layers=len(model.model.layers))
    rec.save()
    print(f"hf_reference: {a.model}: {n / 1e9:.3f}B params, attention {impl}, built in {load_s:.1f} s",
          file=sys.stderr, flush=True)

    def over_budget(what):
        if a.budget_s and time.time() - t_start > a.budget_s:
            rec.data["skipped"].append(what)
            rec.save()
            print(f"hf_reference: {what} skipped: past --budget-s {a.budget_s:g}", file=sys.stderr, flush=True)
            return True
        return False
    with torch.inference_mode():
        for T in ints(a.score_seq):
            if not over_budget(f"score T={T}"):
                score(model, dev, V, T, a.score_tokens, a.score_batch_tokens, rec)
        for B in ints(a.gen_batch):
            if not over_budget(f"generate batch {B}"):
                generate(model, dev, V, B, a.prompt_len, a.gen_len, a.reps, a.warmup, rec)
    rec.data["seconds"] = time.time() - t_start
    rec.save()


if __name__ == "__main__":
    main()

"""test_grad_torch.py — gradients of the backward driver against PyTorch autograd.

Tiny random LLaMA models (GQA with a tied head, MHA with every bias stored in F16, llama3
rope scaling in BF16, and a non-uniform pruned model with a layer without attention and one
without MLP) are written as HF folders by tests/model/test_hf_reference.py's builders. For
each, the mean next-token loss and its gradient with respect to every weight tensor and to
the input embeddings come from a float64 autograd run of the same float64 LLaMA forward
that test is built on, and from tests/train/grad_dump (pb_grad_run). Further cases cover
masked targets, micro-batch accumulation under both loss normalisations, per-micro-batch
gradients, and LoRA adapters (PEFT files) with and without dropout; the dropout masks are
rebuilt here from the documented hash (pb_mix64), so the reference sees the very same masks.

usage: test_grad_torch.py GRAD_DUMP      Exit 77 (skip) when torch or safetensors is missing."""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
try:
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from safetensors.torch import save_file
    import test_hf_reference as R
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

# The bound for fp32 gradients against autograd: max|ours - ref| / max|ref| per
# tensor. Our fp32 backward rounds at ~6e-8 per op over sums of at most a few hundred
# terms and a few layers, so errors of 1e-7..1e-5 are expected; a wrong index, sign, scale
# or a missed path (a bias, the tied head, a GQA group, a dropout mask) is off by 1e-2 or
# more.
TOL = 1e-4
# The loss itself: a double log-softmax over fp32 logits whose relative error is ~1e-6.
LOSS_TOL = 1e-5

MOD = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
       "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
TARGET_INDEX = {"q": 0, "k": 1, "v": 2, "o": 3, "gate": 4, "up": 5, "down": 6}
U64 = (1 << 64) - 1


def mix64(z):
    """splitmix64's finaliser on a numpy uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def dropout_mask(key, micro, layer, target, n, width, p):
    """keep/(1-p) factors of adapter (layer, target) in micro-batch `micro`, as (n, width)."""
    mk = int(mix64(np.uint64((key + micro) & U64)))
    ak = int(mix64(np.uint64(mk) ^ mix64(np.uint64((layer << 8) | TARGET_INDEX[target]))))
    idx = np.arange(n * width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = (mix64(np.uint64(ak) + idx) >> np.uint64(40)).astype(np.int64)
    thresh = int(p * 16777216.0)
    keep = float(np.float32(1.0) / (np.float32(1.0) - np.float32(p)))
    return torch.from_numpy(np.where(u >= thresh, keep, 0.0).reshape(n, width))


def forward(spec, w, ids, lora=None, masks=None):
    """R.reference_logits with LoRA: y = x W^T + b + scale * (drop(x) A^T) B^T.
    Returns (logits, input embeddings) so that the input gradient can be read."""
    eps = spec["eps"]
    h0 = w["model.embed_tokens.weight"][ids]
    h0.retain_grad()
    h = h0
    nb, nt = ids.shape
    causal = torch.triu(torch.ones(nt, nt, dtype=torch.bool), diagonal=1)
    for i, L in enumerate(spec["layers"]):
        p = f"model.layers.{i}."
        def lin(x, t):
            y = x @ w[p + MOD[t] + ".weight"].T
            b = w.get(p + MOD[t] + ".bias")
            if b is not None:
                y = y + b
            if lora and t in lora["targets"]:
                a_ = w[f"base_model.model.{p}{MOD[t]}.lora_A.weight"]
                b_ = w[f"base_model.model.{p}{MOD[t]}.lora_B.weight"]
                xd = x if masks is None else x * masks[(i, t)].view(x.shape)
                y = y + (xd @ a_.T) @ b_.T * (lora["alpha"] / lora["r"])
            return y
        if L["attn"]:
            nh, nkv, hd = L["n_heads"], L["n_kv_heads"], L["head_dim"]
            x = R.rms(h, w[p + "input_layernorm.weight"], eps)
            q = lin(x, "q").view(nb, nt, nh, hd)
            k = lin(x, "k").view(nb, nt, nkv, hd)
            v = lin(x, "v").view(nb, nt, nkv, hd)
            inv = R.rope_inv_freq(spec["theta"], hd, spec.get("rope_scaling"))
            q, k = R.rope(q, inv), R.rope(k, inv)
            k = k.repeat_interleave(nh // nkv, dim=2)
            v = v.repeat_interleave(nh // nkv, dim=2)
            s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
            s = s.masked_fill(causal, float("-inf"))
            a = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v).reshape(nb, nt, nh * hd)
            h = h + lin(a, "o")
        if L["mlp"]:
            x = R.rms(h, w[p + "post_attention_layernorm.weight"], eps)
            g, u = lin(x, "gate"), lin(x, "up")
            h = h + lin(g / (1 + torch.exp(-g)) * u, "down")
    h = R.rms(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if spec["tied"] else w["lm_head.weight"]
    return h @ head.T, h0


def ce(logits, targets):
    sel = targets >= 0
    lp = torch.log_softmax(logits[sel], dim=-1)
    return -lp.gather(1, targets[sel].unsqueeze(1)).mean()


def write_ids(path, x):
    with open(path, "w") as f:
        f.write(f"{x.shape[0]} {x.shape[1]}\n" + " ".join(str(int(i)) for i in x.flatten()) + "\n")


def lora_files(spec, folder, r, alpha, dropout, targets, seed):
    """A PEFT adapter with random A and B (B non-zero, so that every path is exercised)."""
    g = torch.Generator().manual_seed(seed)
    d, t = spec["dim"], {}
    for i, L in enumerate(spec["layers"]):
        q, kv, f = L["n_heads"] * L["head_dim"], L["n_kv_heads"] * L["head_dim"], L["ffn_dim"]
        shapes = {}
        if L["attn"]:
            shapes.update({"q": (q, d), "k": (kv, d), "v": (kv, d), "o": (d, q)})
        if L["mlp"]:
            shapes.update({"gate": (f, d), "up": (f, d), "down": (d, f)})
        for name, (o, n) in shapes.items():
            if name not in targets:
                continue
            base = f"base_model.model.model.layers.{i}.{MOD[name]}"
            t[base + ".lora_A.weight"] = (torch.rand(r, n, generator=g) * 2 - 1) * n ** -0.5
            t[base + ".lora_B.weight"] = (torch.rand(o, r, generator=g) * 2 - 1) * r ** -0.5
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(folder, "adapter_model.safetensors"))
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "peft_type": "LORA",
                   "target_modules": [MOD[x].split(".")[1] for x in targets]}, f)
    return {k: v.double() for k, v in t.items()}


class Checker:
    def __init__(self):
        self.failures = 0
        self.worst = 0.0

    def check(self, ok, msg):
        if not ok:
            self.failures += 1
            print("FAIL: " + msg, file=sys.stderr)

    def rel(self, case, name, ours, ref):
        den = float(ref.abs().max())
        e = float((ours - ref).abs().max()) / den if den > 0 else float((ours - ref).abs().max())
        self.worst = max(self.worst, e)
        self.check(e <= TOL, f"{case}: {name}: rel err {e:.3g} > {TOL}")
        return e


def run_case(C, dump, tmp, case, spec, w64, ids, targets, micro=1, norm="tokens", per=False, lora=None, key=None,
             lora_only=False):
    folder = os.path.join(tmp, case)
    ids_p, tg_p, out_p = os.path.join(tmp, case + ".ids"), os.path.join(tmp, case + ".tg"), os.path.join(tmp, case + ".st")
    write_ids(ids_p, ids)
    write_ids(tg_p, targets)
    cmd = [dump, spec["_folder"], ids_p, out_p, "--targets", tg_p, "--micro", str(micro), "--norm", norm]
    if per:
        cmd.append("--per-micro")
    if lora:
        cmd += ["--lora", lora["dir"]]
    if key is not None:
        cmd += ["--dropout-key", str(key)]
    if lora_only:
        cmd.append("--lora-only")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        C.check(False, f"{case}: grad_dump failed: {r.stderr.strip()}")
        return
    res = json.loads(r.stdout)
    ours = {k: torch.from_numpy(v.astype(np.float64)) for k, v in load_file(out_p).items()}

    # reference: the same loss normalisation over the same micro-batches
    w = {k: v.clone().requires_grad_(True) for k, v in w64.items()}
    if lora:
        w.update({k: v.clone().requires_grad_(True) for k, v in lora["w"].items()})
    bm = ids.shape[0] // micro
    total, n_all = 0, int((targets >= 0).sum())
    h0s = []
    for i in range(micro):
        sl = slice(i * bm, (i + 1) * bm)
        masks = None
        if key is not None:
            masks = {}
            for li, L in enumerate(spec["layers"]):
                for t in lora["targets"]:
                    if (t in ("q", "k", "v", "o") and not L["attn"]) or (t in ("gate", "up", "down") and not L["mlp"]):
                        continue
                    width = {"o": L["n_heads"] * L["head_dim"], "down": L["ffn_dim"]}.get(t, spec["dim"])
                    masks[(li, t)] = dropout_mask(key, i, li, t, bm * ids.shape[1], width, lora["dropout"])
        logits, h0 = forward(spec, w, ids[sl], lora, masks)
        h0s.append(h0)
        li_ = ce(logits, targets[sl])
        n_i = int((targets[sl] >= 0).sum())
        total = total + (li_ / micro if norm == "micro" else li_ * n_i / n_all)
    total.backward()
    loss_err = abs(res["loss"] - float(total)) / abs(float(total))
    C.check(loss_err <= LOSS_TOL, f"{case}: loss {res['loss']} vs {float(total)} (rel {loss_err:.3g})")
    worst = 0.0
    compared = 0
    for name, p in w.items():
        if p.grad is None or (lora_only and "lora_" not in name):
            continue
        if per and spec["tied"] and name == "model.embed_tokens.weight":
            continue   # per-micro-batch gradients of a tied embedding are refused (grad.h)
        if name not in ours:
            C.check(False, f"{case}: no gradient for {name}")
            continue
        worst = max(worst, C.rel(case, name, ours[name].reshape(p.shape), p.grad))
        compared += 1
    if not lora_only:
        for i in range(micro):
            worst = max(worst, C.rel(case, f"input {i}", ours[f"input_grad.{i}"].reshape(h0s[i].shape), h0s[i].grad))
    if lora_only:
        extra = [k for k in ours if "lora_" not in k]
        C.check(not extra, f"{case}: frozen weights got gradients: {extra[:3]}")
    C.check(compared > 0, f"{case}: nothing compared")
    print(f"  {case:34s} {compared:3d} tensors, worst rel err {worst:.2e}, loss rel err {loss_err:.1e}")


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 1:
        print("usage: test_grad_torch.py GRAD_DUMP", file=sys.stderr)
        return 2
    dump = args[0]
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "grad_torch")
    os.makedirs(tmp, exist_ok=True)
    torch.manual_seed(0)
    C = Checker()
    specs = {}
    for seed, name in enumerate(("gqa_tied_f32", "mha_untied_bias_f16", "gqa_llama3_bf16", "pruned_f32")):
        spec = dict(R.MODELS[name])
        stored, w64 = R.make_weights(spec, seed=100 + seed)
        spec["_folder"] = os.path.join(tmp, name)
        R.write_hf(spec, stored, spec["_folder"])
        specs[name] = (spec, w64)

    B, T = 4, 20
    for name, (spec, w64) in specs.items():
        ids = torch.randint(0, spec["vocab"], (B, T))
        tg = torch.cat([ids[:, 1:], torch.full((B, 1), -1)], dim=1)
        run_case(C, dump, tmp, name, spec, w64, ids, tg)

    spec, w64 = specs["pruned_f32"]
    ids = torch.randint(0, spec["vocab"], (B, T))
    tg = torch.cat([ids[:, 1:], torch.full((B, 1), -1)], dim=1)
    tg[torch.rand(B, T) < 0.4] = -1          # prompt-like unlabelled positions
    tg[0, :] = -1
    tg[0, 5] = ids[0, 6]                     # one micro-batch nearly unlabelled: the weights differ
    run_case(C, dump, tmp, "pruned_masked_micro2_tokens", spec, w64, ids, tg, micro=2)
    run_case(C, dump, tmp, "pruned_masked_micro2_micro", spec, w64, ids, tg, micro=2, norm="micro")
    run_case(C, dump, tmp, "pruned_masked_micro4_per", spec, w64, ids, tg, micro=4, per=True)

    spec, w64 = specs["gqa_tied_f32"]
    lw = lora_files(spec, os.path.join(tmp, "lora_all"), 4, 8.0, 0.0, list(MOD), seed=3)
    lora = {"dir": os.path.join(tmp, "lora_all"), "w": lw, "r": 4, "alpha": 8.0, "dropout": 0.0, "targets": list(MOD)}
    ids = torch.randint(0, spec["vocab"], (B, T))
    tg = torch.cat([ids[:, 1:], torch.full((B, 1), -1)], dim=1)
    run_case(C, dump, tmp, "gqa_lora_all", spec, w64, ids, tg, lora=lora)

    spec, w64 = specs["pruned_f32"]
    tl = ["q", "v", "o", "down", "up"]
    # scale alpha/r = 2 as in the case above: random non-zero B at a larger scale makes the
    # tiny model so ill-conditioned that fp32 rounding alone reaches 4e-5 (measured at 8)
    lw = lora_files(spec, os.path.join(tmp, "lora_drop"), 2, 4.0, 0.3, tl, seed=4)
    lora = {"dir": os.path.join(tmp, "lora_drop"), "w": lw, "r": 2, "alpha": 4.0, "dropout": 0.3, "targets": tl}
    ids = torch.randint(0, spec["vocab"], (B, T))
    tg = torch.cat([ids[:, 1:], torch.full((B, 1), -1)], dim=1)
    run_case(C, dump, tmp, "pruned_lora_dropout_frozen", spec, w64, ids, tg, micro=2, lora=lora, key=12345,
             lora_only=True)
    run_case(C, dump, tmp, "pruned_lora_dropout_full", spec, w64, ids, tg, micro=2, lora=lora, key=99)

    print(f"worst relative gradient error over all cases: {C.worst:.2e} (tolerance {TOL})")
    return 1 if C.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""test_act_reference.py — Wanda-sp and FLAP against an independent float64 PyTorch implementation.

For tiny random HF models (MHA and GQA, with and without biases, a non-uniform model with a
layer lacking attention and one lacking its MLP; from tests/model/test_hf_reference.py) and
for stories260K (weights via pb_dump --tensors, windows from pb_calib_load on TinyStories,
contiguous), the C library (through tests/prune_act/act_tool) and this reference compute:
  - the importance scores (head units and channels; Wanda-sp: the dense model's; FLAP: the
    standardised scores) for every metric,
  - the removed structures: Wanda-sp sequentially (layer l scored with layers < l pruned),
    FLAP al-am and ul-um with wifv / ifv / wifn,
  - every tensor of the pruned model: the sliced weights exactly, FLAP's compensated o/down
    biases within tolerance (with --mask as well: masked weights plus the same biases).
The reference follows FLAP's lib/prune.py and lib/layerwrapper.py line by line (BiasGPT's
in-place baseline update, which makes its `old_baseline_inp` the NEW mean, is reproduced with
the same torch in-place operations), and checks the closed form that flap.c documents.

usage: test_act_reference.py ACT_TOOL PB_DUMP    (exit 77 when torch is missing)"""
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    from safetensors.torch import load_file
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.environ.get("PB_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "model"))
from test_hf_reference import MODELS, make_weights, reference_logits, rms, rope, rope_inv_freq, write_hf  # noqa: E402

# Scores: max |ours - ref| / max |ref| per layer and module. Ours run the forward in fp32
# (relative error ~1e-6 after a few layers, see test_hf_reference.py) and accumulate the
# statistics in double; the scores are products and squares of those (wifv squared: 4 factors
# of activations), so ~1e-5 at worst. 1e-4 leaves 10x, while a wrong estimator (Welford's
# old-mean factor, a biased std, a missing square, the wrong window count) moves scores by
# 1e-2 or more.
SCORE_TOL = 1e-4
# Compensated biases: W[:, removed] x̄[removed] in fp32 weights and fp32 activations,
# accumulated in double and stored in fp32; same budget as the scores.
BIAS_TOL = 1e-4
N_WIN, T_WIN = 6, 24

NAMES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
         "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


# ---- the model, layer by layer ------------------------------------------------------------

def layer_forward(spec, w, i, L, h):
    """One decoder layer in float64; returns (output, o_proj input, down_proj input)."""
    p, eps = f"model.layers.{i}.", spec["eps"]
    nb, nt = h.shape[:2]
    causal = torch.triu(torch.ones(nt, nt, dtype=torch.bool), diagonal=1)

    def lin(x, name):
        y = x @ w[p + name + ".weight"].T
        b = w.get(p + name + ".bias")
        return y if b is None else y + b
    att_in = mlp_in = None
    if L["attn"]:
        nh, nkv, hd = L["n_heads"], L["n_kv_heads"], L["head_dim"]
        x = rms(h, w[p + "input_layernorm.weight"], eps)
        q = lin(x, NAMES["q"]).view(nb, nt, nh, hd)
        k = lin(x, NAMES["k"]).view(nb, nt, nkv, hd)
        v = lin(x, NAMES["v"]).view(nb, nt, nkv, hd)
        inv = rope_inv_freq(spec["theta"], hd, spec.get("rope_scaling"))
        q, k = rope(q, inv), rope(k, inv)
        k, v = k.repeat_interleave(nh // nkv, dim=2), v.repeat_interleave(nh // nkv, dim=2)
        s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
        s = s.masked_fill(causal, float("-inf"))
        att_in = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v).reshape(nb, nt, nh * hd)
        h = h + lin(att_in, NAMES["o"])
    if L["mlp"]:
        x = rms(h, w[p + "post_attention_layernorm.weight"], eps)
        g, u = lin(x, NAMES["gate"]), lin(x, NAMES["up"])
        mlp_in = g / (1 + torch.exp(-g)) * u
        h = h + lin(mlp_in, NAMES["down"])
    return h, att_in, mlp_in


def full_logits(spec, w, layers, ids):
    h = w["model.embed_tokens.weight"][ids]
    for i, L in enumerate(layers):
        h = layer_forward(spec, w, i, L, h)[0]
    h = rms(h, w["model.norm.weight"], spec["eps"])
    return h @ (w["model.embed_tokens.weight"] if spec["tied"] else w["lm_head.weight"]).T


# ---- statistics, as FLAP's layerwrapper.py computes them ------------------------------------

def wanda_scaler(X):
    """WrappedGPT.add_batch, one sample per call: running mean over samples of ||X[n,:,j]||^2."""
    scaler, ns = torch.zeros(X.shape[2], dtype=torch.float64), 0
    for n in range(X.shape[0]):
        inp = X[n].t()
        scaler *= ns / (ns + 1)
        ns += 1
        scaler += torch.norm(inp, p=2, dim=1) ** 2 / ns
    return scaler


def biasgpt(X, metric):
    """BiasGPT.add_batch, one sample per call, with its in-place updates (old_baseline_inp
    aliases baseline_inp). Returns (baseline, fluc or scaler)."""
    C = X.shape[2]
    baseline = torch.zeros(C, dtype=torch.float64)
    other = torch.zeros(C, dtype=torch.float64)
    ns = 0
    for n in range(X.shape[0]):
        inp = X[n].t()                                       # (C, T)
        old_baseline = baseline                               # an alias, as in the code
        baseline *= ns / (ns + 1)
        baseline += torch.mean(inp, dim=1) / (ns + 1)
        if metric == "wifn":
            other *= ns / (ns + 1)
            other += torch.norm(inp, p=2, dim=1) ** 2 / (ns + 1)
        elif ns == 0:
            other = 0
        else:
            other *= (ns - 1) / (ns + 1 - 1)
            other += torch.sum((inp - baseline.unsqueeze(1)) * (inp - old_baseline.unsqueeze(1)), dim=1) / (ns + 1)
        ns += 1
    if metric != "wifn":
        # the closed form documented in width_act.c
        N, closed, run = X.shape[0], torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)
        for n in range(1, N + 1):
            run = X[:n].reshape(-1, C).mean(0)
            if n >= 2:
                closed += (n - 1) / n * ((X[n - 1] - run) ** 2).sum(0)
        closed /= max(N - 1, 1)
        assert torch.allclose(closed, other, rtol=1e-12, atol=0), "closed form of the fluctuation"
    return baseline, other


def flap_metric(metric, W, stat):
    if metric == "ifv":
        return stat
    if metric == "wifv":
        return stat * torch.sum(W.pow(2), dim=0)
    return (torch.abs(W) * torch.sqrt(stat.reshape((1, -1)))).mean(axis=0)


def standardise(x):
    return (x - torch.mean(x)) / torch.std(x)


def lowest(scores, k):
    """The k lowest, ties to the lower index (the documented rule of our implementation)."""
    return sorted(sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))[:k])


def head_params(spec, w, i, L):
    d, r, hd = spec["dim"], L["n_heads"] // L["n_kv_heads"], L["head_dim"]
    p = f"model.layers.{i}.self_attn."
    n = 2 * r * hd * d + 2 * hd * d
    n += sum(x for key, x in (("q", r * hd), ("k", hd), ("v", hd)) if p + key + "_proj.bias" in w)
    return n


# ---- pruning the reference weights --------------------------------------------------------

def prune_layer(spec, w, i, L, heads, chans):
    """Removes head units and channels of layer i from w / L (as slicing does)."""
    p = f"model.layers.{i}."
    if heads and L["attn"]:
        G, hd = L["n_kv_heads"], L["head_dim"]
        r = L["n_heads"] // G
        keep = [g for g in range(G) if g not in heads]
        if not keep:
            for key in list(w):
                if key.startswith(p + "self_attn.") or key == p + "input_layernorm.weight":
                    del w[key]
            L.update(attn=False, n_heads=0, n_kv_heads=0)
        else:
            qrows = torch.tensor([g * r * hd + j for g in keep for j in range(r * hd)])
            kvrows = torch.tensor([g * hd + j for g in keep for j in range(hd)])
            for key, rows in (("q", qrows), ("k", kvrows), ("v", kvrows)):
                w[p + NAMES[key] + ".weight"] = w[p + NAMES[key] + ".weight"][rows]
                if p + NAMES[key] + ".bias" in w:
                    w[p + NAMES[key] + ".bias"] = w[p + NAMES[key] + ".bias"][rows]
            w[p + NAMES["o"] + ".weight"] = w[p + NAMES["o"] + ".weight"][:, qrows]
            L.update(n_kv_heads=len(keep), n_heads=len(keep) * r)
    if chans and L["mlp"]:
        keep = [j for j in range(L["ffn_dim"]) if j not in chans]
        if not keep:
            for key in list(w):
                if key.startswith(p + "mlp.") or key == p + "post_attention_layernorm.weight":
                    del w[key]
            L.update(mlp=False, ffn_dim=0)
        else:
            idx = torch.tensor(keep)
            for key in ("gate", "up"):
                w[p + NAMES[key] + ".weight"] = w[p + NAMES[key] + ".weight"][idx]
                if p + NAMES[key] + ".bias" in w:
                    w[p + NAMES[key] + ".bias"] = w[p + NAMES[key] + ".bias"][idx]
            w[p + NAMES["down"] + ".weight"] = w[p + NAMES["down"] + ".weight"][:, idx]
            L.update(ffn_dim=len(keep))


def units_of(L, X):
    """(G, per): head units and o_proj columns per unit."""
    G = L["n_kv_heads"]
    return G, X.shape[-1] // G


def wanda_reference(spec, w0, ids, p):
    """Sequential Wanda-sp; returns (dense head scores, dense channel scores, removed, pruned w, layers)."""
    w, layers = dict(w0), [dict(L) for L in spec["layers"]]
    dense_h, dense_c = score_dense_wanda(spec, w0, ids)
    h = w["model.embed_tokens.weight"][ids]
    removed = []
    for i, L in enumerate(layers):
        _, Xa, Xm = layer_forward(spec, w, i, L, h)
        pre = f"model.layers.{i}."
        heads, chans = [], []
        if Xa is not None:
            G, per = units_of(L, Xa)
            c = (torch.abs(w[pre + NAMES["o"] + ".weight"]) * torch.sqrt(wanda_scaler(Xa)).reshape(1, -1)).mean(0)
            heads = lowest(c.reshape(G, per).sum(1), int(p * G))
        if Xm is not None:
            c = (torch.abs(w[pre + NAMES["down"] + ".weight"]) * torch.sqrt(wanda_scaler(Xm)).reshape(1, -1)).mean(0)
            chans = lowest(c, int(p * c.numel()))
        removed += [(i, "head", g) for g in heads] + [(i, "channel", j) for j in chans]
        prune_layer(spec, w, i, L, heads, chans)
        h = layer_forward(spec, w, i, L, h)[0]
    return dense_h, dense_c, removed, w, layers


def score_dense_wanda(spec, w, ids):
    h, hs, cs = w["model.embed_tokens.weight"][ids], [], []
    for i, L in enumerate(spec["layers"]):
        h, Xa, Xm = layer_forward(spec, w, i, L, h)
        pre = f"model.layers.{i}."
        if Xa is not None:
            G, per = units_of(L, Xa)
            c = (torch.abs(w[pre + NAMES["o"] + ".weight"]) * torch.sqrt(wanda_scaler(Xa)).reshape(1, -1)).mean(0)
            hs.append(c.reshape(G, per).sum(1))
        else:
            hs.append(torch.zeros(0, dtype=torch.float64))
        if Xm is not None:
            cs.append((torch.abs(w[pre + NAMES["down"] + ".weight"]) * torch.sqrt(wanda_scaler(Xm)).reshape(1, -1)).mean(0))
        else:
            cs.append(torch.zeros(0, dtype=torch.float64))
    return hs, cs


def flap_reference(spec, w0, ids, metric, structure, p, bias):
    """FLAP on the dense statistics; returns (head scores, channel scores, removed, pruned w, layers)."""
    w, layers = dict(w0), [dict(L) for L in spec["layers"]]
    h = w["model.embed_tokens.weight"][ids]
    hs, cs, att_base, mlp_base = [], [], [], []
    for i, L in enumerate(layers):
        h, Xa, Xm = layer_forward(spec, w0, i, L, h)     # dense output feeds the next layer
        pre = f"model.layers.{i}."
        if Xa is not None:
            G, per = units_of(L, Xa)
            base, stat = biasgpt(Xa, metric)
            S = flap_metric(metric, w[pre + NAMES["o"] + ".weight"], stat) ** 2
            hs.append(standardise(S).reshape(G, per).mean(1))
            att_base.append(base)
        else:
            hs.append(torch.zeros(0, dtype=torch.float64))
            att_base.append(None)
        if Xm is not None:
            base, stat = biasgpt(Xm, metric)
            cs.append(standardise(flap_metric(metric, w[pre + NAMES["down"] + ".weight"], stat)))
            mlp_base.append(base)
        else:
            cs.append(torch.zeros(0, dtype=torch.float64))
            mlp_base.append(None)
    gone_h, gone_c = [[] for _ in layers], [[] for _ in layers]
    if structure == "ul-um":
        for i in range(len(layers)):
            gone_h[i] = lowest(hs[i], int(p * hs[i].numel()))
            gone_c[i] = lowest(cs[i], int(p * cs[i].numel()))
    else:
        scores, cost, who = [], [], []
        for i, L in enumerate(layers):     # attention first, as the code concatenates
            for g in range(hs[i].numel()):
                scores.append(float(hs[i][g]))
                cost.append(head_params(spec, w0, i, L) / (3 * spec["dim"]))
                who.append((i, "head", g))
        for i in range(len(layers)):
            for j in range(cs[i].numel()):
                scores.append(float(cs[i][j]))
                cost.append(1.0)
                who.append((i, "channel", j))
        prune_metric = torch.tensor(scores, dtype=torch.float64)
        sorted_prune, indices = torch.sort(prune_metric, descending=True)
        weight = torch.tensor(cost, dtype=torch.float64)[indices]
        cum = torch.cumsum(weight, 0)
        threshold = sorted_prune[torch.argmin(torch.abs(cum - torch.sum(weight) * (1 - p)))]
        for s, (i, kind, idx) in zip(scores, who):
            if not s > threshold:
                (gone_h if kind == "head" else gone_c)[i].append(idx)
    removed = []
    for i, L in enumerate(layers):
        pre = f"model.layers.{i}."
        for key, gone, base, units in (("o", gone_h[i], att_base[i], hs[i].numel()),
                                       ("down", gone_c[i], mlp_base[i], cs[i].numel())):
            if not bias or not gone or len(gone) == units:
                continue
            W = w0[pre + NAMES[key] + ".weight"]
            per = W.shape[1] // units
            mask = torch.ones(W.shape[1], dtype=torch.bool)
            for u in gone:
                mask[u * per:(u + 1) * per] = False
            comp = (base * ~mask) @ W.T
            name = pre + NAMES[key] + ".bias"
            w[name] = w[name] + comp if name in w else comp
        removed += [(i, "head", g) for g in sorted(gone_h[i])] + [(i, "channel", j) for j in sorted(gone_c[i])]
        prune_layer(spec, w, i, L, gone_h[i], gone_c[i])
    return hs, cs, removed, w, layers


# ---- running ours and comparing ------------------------------------------------------------

def read_scores(path):
    out = []
    with open(path) as f:
        for line in f:
            v = line.split()
            out.append(torch.tensor([float(x) for x in v[1:]], dtype=torch.float64))
            assert int(v[0]) == len(v) - 1
    return out


def score_err(ours, ref):
    """max |ours - ref| / max |ref| per layer. A layer with one head unit scores exactly 0 in
    FLAP (the mean of its standardised channels), so a layer's scale is floored at 1e-3 of the
    largest score of any layer."""
    if len(ours) != len(ref) or any(a.shape != b.shape for a, b in zip(ours, ref)):
        return math.inf
    top = max([float(b.abs().max()) for b in ref if b.numel()] + [0.0])
    worst = 0.0
    for a, b in zip(ours, ref):
        if b.numel():
            den = max(float(b.abs().max()), 1e-3 * top)
            e = float((a - b).abs().max())
            worst = max(worst, e / den if den > 0 else e)
    return worst


def run_tool(tool, model, out, args):
    os.makedirs(out, exist_ok=True)
    r = subprocess.run([tool, model, "--threads", "2", "--out", out, *args], capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip()
    return None


def check_case(name, tool, model, out, spec, w, ids, args, ref, mask, failures):
    msg = run_tool(tool, model, out, args)
    if msg:
        print(f"FAIL {name}: act_tool: {msg}")
        return failures + 1
    ref_h, ref_c, ref_removed, ref_w, ref_layers = ref
    e_h = score_err(read_scores(os.path.join(out, "scores_head.txt")), ref_h)
    e_c = score_err(read_scores(os.path.join(out, "scores_channel.txt")), ref_c)
    with open(os.path.join(out, "result.txt")) as f:
        f.readline()
        ours_removed = [(int(a), b, int(c)) for a, b, c in (line.split() for line in f)]
    same = sorted(ours_removed) == sorted(ref_removed)
    got = load_file(os.path.join(out, "model", "model.safetensors"))
    w_err, bias_err, exact = 0.0, 0.0, True
    expect = dict(ref_w)
    if mask:   # masked model: full shapes, removed structures zeroed, biases as compensated
        expect = masked_expectation(spec, w, ref_removed, ref_w)
    if set(got) != set(expect):
        exact = False
        print(f"     tensor names differ: ours-only {sorted(set(got) - set(expect))[:4]}, "
              f"ref-only {sorted(set(expect) - set(got))[:4]}")
    for key in set(got) & set(expect):
        a, b = got[key].double(), expect[key]
        if a.shape != b.shape:
            exact = False
            print(f"     {key}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            continue
        if key.endswith(("o_proj.bias", "down_proj.bias")):
            den = float(b.abs().max()) or 1.0
            bias_err = max(bias_err, float((a - b).abs().max()) / den)
        elif not torch.equal(a, b):
            exact = False
            w_err = max(w_err, float((a - b).abs().max()))
    ok = e_h <= SCORE_TOL and e_c <= SCORE_TOL and same and exact and bias_err <= BIAS_TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: scores head {e_h:.1e} channel {e_c:.1e}, removed {len(ours_removed)} "
          f"{'identical' if same else 'DIFFER'}, weights {'exact' if exact else f'DIFFER ({w_err:.1e})'}, "
          f"o/down biases {bias_err:.1e}")
    if not same:
        print(f"     ours-only {sorted(set(ours_removed) - set(ref_removed))[:8]} "
              f"ref-only {sorted(set(ref_removed) - set(ours_removed))[:8]}")
    return failures + (not ok)


def masked_expectation(spec, w, removed, ref_w):
    """The masked model: dense weights with removed rows/columns zeroed; o/down biases from
    the reference (zeroed with a module that lost every unit)."""
    e = {k: v.clone() for k, v in w.items()}
    by = {}
    for i, kind, idx in removed:
        by.setdefault(i, {"head": [], "channel": []})[kind].append(idx)
    for i, L in enumerate(spec["layers"]):
        pre = f"model.layers.{i}."
        hd_ch = by.get(i, {"head": [], "channel": []})
        if L["attn"]:
            G, hd = L["n_kv_heads"], L["head_dim"]
            r = L["n_heads"] // G
            for g in hd_ch["head"]:
                e[pre + NAMES["q"] + ".weight"][g * r * hd:(g + 1) * r * hd] = 0
                e[pre + NAMES["k"] + ".weight"][g * hd:(g + 1) * hd] = 0
                e[pre + NAMES["v"] + ".weight"][g * hd:(g + 1) * hd] = 0
                for key, a, b in (("q", g * r * hd, (g + 1) * r * hd), ("k", g * hd, (g + 1) * hd), ("v", g * hd, (g + 1) * hd)):
                    if pre + NAMES[key] + ".bias" in e:
                        e[pre + NAMES[key] + ".bias"][a:b] = 0
                e[pre + NAMES["o"] + ".weight"][:, g * r * hd:(g + 1) * r * hd] = 0
            name = pre + NAMES["o"] + ".bias"
            if name in ref_w:
                e[name] = ref_w[name]
            elif len(hd_ch["head"]) == G and name in e:
                e[name] = torch.zeros_like(e[name])
        if L["mlp"]:
            for j in hd_ch["channel"]:
                for key in ("gate", "up"):
                    e[pre + NAMES[key] + ".weight"][j] = 0
                    if pre + NAMES[key] + ".bias" in e:
                        e[pre + NAMES[key] + ".bias"][j] = 0
                e[pre + NAMES["down"] + ".weight"][:, j] = 0
            name = pre + NAMES["down"] + ".bias"
            if name in ref_w:
                e[name] = ref_w[name]
            elif len(hd_ch["channel"]) == L["ffn_dim"] and name in e:
                e[name] = torch.zeros_like(e[name])
    return e


def cases(spec, w, ids):
    """(label, act_tool args, reference, mask)"""
    out = []
    for p in (0.3, 0.5):
        out.append((f"wanda-sp p={p}", ["--method", "wanda-sp", "--p", str(p)], wanda_reference(spec, w, ids, p), False))
    for metric in ("wifv", "ifv", "wifn"):
        for structure in ("al-am", "ul-um"):
            ref = flap_reference(spec, w, ids, metric, structure, 0.4, True)
            out.append((f"flap {metric} {structure} p=0.4",
                        ["--method", "flap", "--metric", metric, "--structure", structure, "--p", "0.4"], ref, False))
    ref = flap_reference(spec, w, ids, "wifv", "al-am", 0.4, True)
    out.append(("flap wifv al-am p=0.4 --mask", ["--method", "flap", "--p", "0.4", "--mask"], ref, True))
    # p = 0.6: pruned_f32's one-unit layer loses its attention (its head scores 0, the
    # threshold is above); the compensation of the other layers must be unaffected
    ref = flap_reference(spec, w, ids, "wifv", "al-am", 0.6, True)
    out.append(("flap wifv al-am p=0.6", ["--method", "flap", "--p", "0.6"], ref, False))
    out.append(("flap wifv al-am p=0.6 --mask", ["--method", "flap", "--p", "0.6", "--mask"], ref, True))
    out.append(("flap wifv al-am p=0.6 no bias", ["--method", "flap", "--p", "0.6", "--no-bias"],
                flap_reference(spec, w, ids, "wifv", "al-am", 0.6, False), False))
    return out


def stories_spec(info):
    layers = [{k: L[k] for k in ("n_heads", "n_kv_heads", "head_dim", "ffn_dim", "attn", "mlp", "bias")}
              for L in info["layers"]]
    rs = None if info["rope_scaling"]["type"] == 0 else "unsupported"
    return dict(dim=info["dim"], vocab=info["vocab_size"], eps=info["norm_eps"], theta=info["rope_theta"],
                tied=info["tied"], rope_scaling=rs, layers=layers)


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tool, dump = args
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_act_reference")
    os.makedirs(tmp, exist_ok=True)
    failures = 0
    chosen = ["gqa_tied_f32", "mha_untied_bias_f16", "untied_plain_f32", "pruned_f32"]
    for seed, name in enumerate(chosen):
        spec = MODELS[name]
        stored, w = make_weights(spec, 50 + seed)
        folder = os.path.join(tmp, name)
        write_hf(spec, stored, folder)
        g = torch.Generator().manual_seed(200 + seed)
        ids = torch.randint(0, spec["vocab"], (N_WIN, T_WIN), generator=g)
        ids_path = os.path.join(tmp, f"{name}.ids")
        with open(ids_path, "w") as f:
            f.write(f"{N_WIN} {T_WIN}\n" + " ".join(str(int(i)) for i in ids.flatten()) + "\n")
        # our layer-by-layer reference forward is the model reference's forward
        e = float((full_logits(spec, w, spec["layers"], ids) - reference_logits(spec, w, ids)).abs().max())
        if e > 1e-9:
            failures += 1
            print(f"FAIL {name}: layer-by-layer reference forward differs from reference_logits by {e:.1e}")
        for k, (label, targs, ref, mask) in enumerate(cases(spec, w, ids)):
            failures = check_case(f"{name}: {label}", tool, folder, os.path.join(tmp, f"{name}.{k}"), spec, w, ids,
                                  ["--ids", ids_path, *targs], ref, mask, failures)
    shared = os.environ.get("PB_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    gguf = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    if not os.path.exists(gguf):
        print(f"note: {gguf} not found; stories260K cases skipped")
    else:
        tdir = os.path.join(tmp, "stories_tensors")
        os.makedirs(tdir, exist_ok=True)
        r = subprocess.run([dump, gguf, "--tensors", tdir], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL stories260K: pb_dump: {r.stderr.strip()}")
            return 1
        with open(os.path.join(tdir, "model.json")) as f:
            info = json.load(f)
        spec = stories_spec(info)
        w = {}
        for key, t in info["tensors"].items():
            x = np.fromfile(os.path.join(tdir, key + ".f32"), dtype="<f4").astype(np.float64)
            w[key] = torch.from_numpy(x).reshape(t["shape"] if t["shape"][0] != 1 else (t["shape"][1],))
        calib = ["--calib", "tinystories", "--n", "8", "--T", "64", "--data-dir", os.path.join(shared, "data")]
        out0 = os.path.join(tmp, "stories.windows")
        msg = run_tool(tool, gguf, out0, calib + ["--method", "wanda-sp", "--p", "0.2"])
        if msg:
            print(f"FAIL stories260K: act_tool: {msg}")
            return 1
        with open(os.path.join(out0, "windows.txt")) as f:
            n, T = map(int, f.readline().split())
            ids = torch.tensor([int(x) for x in f.read().split()]).reshape(n, T)
        for k, (label, targs, ref, mask) in enumerate(cases(spec, w, ids)):
            failures = check_case(f"stories260K: {label}", tool, gguf, os.path.join(tmp, f"stories.{k}"), spec, w, ids,
                                  calib + targs, ref, mask, failures)
    print(f"prune_act_reference: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

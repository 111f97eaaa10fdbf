"""test_width_reference.py — LLM-Pruner's scores and selections against an independent float64
PyTorch implementation.

Models: tiny random HF models from tests/model/test_hf_reference.py (GQA with a tied head;
MHA with every bias, stored F16; the non-uniform "pruned" model with GQA and MHA layers,
partial biases, a layer without attention and one without MLP), or with --stories the real
stories260K (weights via pb_dump --tensors, calibration windows from pb_calib_load on
tinystories, contiguous, printed by width_tool so that the reference sees the same ids).

Reference: g = autograd gradient (float64) of the mean next-token loss over all windows in
one batch; F = (1/N) sum_j g_j^2 with g_j from N separate passes, one per window (LLM-Pruner's
acc_grad); salience per element (param_first w g, param_second w^2 F, param_mix
w g - w^2 F / 2, vectorize w g); row scores of q, k, v, gate, up and column scores of o, down
(sum |s|, or |sum s| for vectorize); members reduced per channel (sum, mean, max, prod,
first), q and o folded over the query heads of a KV group, root first (q for MHA, k for GQA),
summed over head_dim for head units. Also magnitude (l1, l2: the norm of all of a unit's
weights). Then the structures pb_prune removes at a group ratio on a layer range must be
the reference's lowest scores with LLM-Pruner's counts (C - int(C (1 - r))).

usage: test_width_reference.py WIDTH_TOOL PB_DUMP [--stories]
Exit 77 (skip) when torch is missing, or with --stories when ../shared is absent."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
try:
    import numpy as np
    import torch
    import test_hf_reference as R
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

# Scores: max |ours - ref| / max |ref| per layer and kind. Ours come from fp32 gradients
# (whose error against float64 autograd is 1e-7..1e-5 of the tensor's largest entry, see
# tests/train/test_grad_torch.py) reduced in double; a product of four member scores adds
# their relative errors, and vectorize's |sum s| cancels about sqrt(d) of its magnitude, so
# errors up to a few 1e-6 are expected. 1e-4 leaves a 10x margin, while a wrong member,
# sign, fold (query head to KV group), Fisher normalisation or reduction is off by 1e-2 or
# more.
TOL = 1e-4
# Magnitude: double sums of the same fp32 weights in a different order: ~1e-15.
MAG_TOL = 1e-10

MOD = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
       "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
CRITERIA = ["param_first", "param_second", "param_mix", "vectorize"]
AGGS = ["sum", "mean", "max", "prod", "first"]


def run_tool(tool, args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"width_tool {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def weight_names(spec):
    names = []
    for i, L in enumerate(spec["layers"]):
        kinds = (["q", "k", "v", "o"] if L["attn"] else []) + (["gate", "up", "down"] if L["mlp"] else [])
        names += [f"model.layers.{i}.{MOD[k]}.weight" for k in kinds]
    return names


def ref_grads(spec, w, ids):
    """g (batch mean loss) and F = mean over windows of g_j^2, float64."""
    names = weight_names(spec)
    params = {k: v.clone().requires_grad_(k in names) for k, v in w.items()}
    plist = [params[n] for n in names]

    def loss(x):
        lg = R.reference_logits(spec, params, x)
        return torch.nn.functional.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]), x[:, 1:].reshape(-1))

    g = dict(zip(names, torch.autograd.grad(loss(ids), plist)))
    F = {n: torch.zeros_like(w[n]) for n in names}
    N = ids.shape[0]
    for j in range(N):
        for n, x in zip(names, torch.autograd.grad(loss(ids[j:j + 1]), plist)):
            F[n] += x * x / N
    return g, F


def member(crit, w, g, F, by_col):
    s = {"param_first": w * g, "vectorize": w * g, "param_second": w * w * F,
         "param_mix": w * g - 0.5 * w * w * F}[crit]
    d = 0 if by_col else 1
    return s.sum(d).abs() if crit == "vectorize" else s.abs().sum(d)


def reduce(st, agg):
    return {"sum": lambda: st.sum(0), "mean": lambda: st.mean(0), "max": lambda: st.max(0).values,
            "prod": lambda: st.prod(0), "first": lambda: st[0]}[agg]()


def ref_scores(spec, w, g, F, crit, agg):
    heads, chans = [], []
    for i, L in enumerate(spec["layers"]):
        p = f"model.layers.{i}."
        ms = {k: member(crit, w[p + MOD[k] + ".weight"], g[p + MOD[k] + ".weight"], F[p + MOD[k] + ".weight"],
                        k in ("o", "down"))
              for k in MOD if (L["attn"] if k in ("q", "k", "v", "o") else L["mlp"])}
        if L["attn"]:
            nkv, hd = L["n_kv_heads"], L["head_dim"]
            r = L["n_heads"] // nkv
            q, o = ms["q"].view(nkv, r, hd).sum(1), ms["o"].view(nkv, r, hd).sum(1)
            k, v = ms["k"].view(nkv, hd), ms["v"].view(nkv, hd)
            heads.append(reduce(torch.stack([q, k, v, o] if r == 1 else [k, q, v, o]), agg).sum(1))
        else:
            heads.append(torch.zeros(0, dtype=torch.float64))
        chans.append(reduce(torch.stack([ms["gate"], ms["up"], ms["down"]]), agg) if L["mlp"]
                     else torch.zeros(0, dtype=torch.float64))
    return heads, chans


def ref_magnitude(spec, w, pw):
    heads, chans = [], []
    for i, L in enumerate(spec["layers"]):
        p = f"model.layers.{i}."
        W = {k: w[p + MOD[k] + ".weight"].abs() ** pw
             for k in MOD if (L["attn"] if k in ("q", "k", "v", "o") else L["mlp"])}
        if L["attn"]:
            nkv, hd = L["n_kv_heads"], L["head_dim"]
            r, d = L["n_heads"] // nkv, W["q"].shape[1]
            s = (W["q"].view(nkv, r * hd, d).sum((1, 2)) + W["k"].view(nkv, hd, d).sum((1, 2)) +
                 W["v"].view(nkv, hd, d).sum((1, 2)) + W["o"].view(d, nkv, r * hd).sum((0, 2)))
            heads.append(s ** (1.0 / pw))
        else:
            heads.append(torch.zeros(0, dtype=torch.float64))
        chans.append((W["gate"].sum(1) + W["up"].sum(1) + W["down"].sum(0)) ** (1.0 / pw) if L["mlp"]
                     else torch.zeros(0, dtype=torch.float64))
    return heads, chans


def rel(ours, ref):
    """Worst over layers of max |ours - ref| / max |ref| (layers without units skipped)."""
    worst = 0.0
    for a, b in zip(ours, ref):
        if len(b) == 0:
            if len(a) != 0:
                return float("inf")
            continue
        a = torch.tensor(a, dtype=torch.float64)
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float((a - b).abs().max() / b.abs().max()))
    return worst


def ref_removed(spec, heads, chans, r, lo, hi):
    """Per (layer, kind): the reference's lowest (score, index) with LLM-Pruner's counts, and
    the gap at the boundary relative to the largest score (a near-tie makes a swap legal)."""
    out = {}
    for i, L in enumerate(spec["layers"]):
        if not (lo <= i < hi):
            continue
        for kind, sc, C, unit in ((3, heads[i], L["n_kv_heads"] * L["head_dim"], L["head_dim"]),
                                  (4, chans[i], L["ffn_dim"], 1)):
            if len(sc) == 0:
                continue
            k = (C - int(C * (1.0 - r))) // unit
            order = sorted(range(len(sc)), key=lambda j: (float(sc[j]), j))
            gap = float(sc[order[k]] - sc[order[k - 1]]) / float(sc.abs().max()) if 0 < k < len(sc) else 1.0
            out[(i, kind)] = (set(order[:k]), gap)
    return out


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, ok, msg):
        self.failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {msg}")


# every criterion with every reduction, and the selections: on the tiny models all of them;
# on stories260K (slower, above all under ASan) the criteria the papers report (param_first,
# param_mix, vectorize) with every reduction, param_second with sum, and four selections
SCORE_RUNS_FULL = [(c, a) for c in CRITERIA for a in AGGS]
SCORE_RUNS_REAL = [(c, a) for c in ("param_first", "param_mix", "vectorize") for a in AGGS] + [("param_second", "sum")]
PRUNE_RUNS_FULL = [("param_first", "sum", 0.5), ("param_second", "sum", 0.4), ("param_mix", "sum", 0.5),
                   ("vectorize", "sum", 0.3), ("param_first", "max", 0.5), ("param_mix", "prod", 0.5),
                   ("vectorize", "first", 0.5), ("param_first", "mean", 0.6)]
PRUNE_RUNS_REAL = PRUNE_RUNS_FULL[:4]


def check_model(C, tool, model_args, spec, w, ids, label, lo, hi, full):
    g, F = ref_grads(spec, w, ids)
    worst = 0.0
    for crit, agg in SCORE_RUNS_FULL if full else SCORE_RUNS_REAL:
        got = run_tool(tool, model_args + ["--scores", "--criterion", crit, "--aggregation", agg])
        rh, rc = ref_scores(spec, w, g, F, crit, agg)
        eh, ec = rel(got["heads"], rh), rel(got["channels"], rc)
        worst = max(worst, eh, ec)
        C.check(eh <= TOL and ec <= TOL, f"{label} {crit}/{agg}: heads {eh:.2e}, channels {ec:.2e}")
    print(f"note {label}: worst relative score error {worst:.2e}")
    for crit in ("l1", "l2"):
        got = run_tool(tool, model_args + ["--scores", "--method", "magnitude", "--criterion", crit])
        rh, rc = ref_magnitude(spec, w, 1 if crit == "l1" else 2)
        eh, ec = rel(got["heads"], rh), rel(got["channels"], rc)
        C.check(eh <= MAG_TOL and ec <= MAG_TOL, f"{label} magnitude/{crit}: heads {eh:.2e}, channels {ec:.2e}")
    # selections: every criterion with sum, and a few other reductions, on a layer range
    for crit, agg, r in PRUNE_RUNS_FULL if full else PRUNE_RUNS_REAL:
        got = run_tool(tool, model_args + ["--prune", "--criterion", crit, "--aggregation", agg, "--native", str(r),
                                           "--layers", f"{lo}:{hi}"])
        rh, rc = ref_scores(spec, w, g, F, crit, agg)
        want = ref_removed(spec, rh, rc, r, lo, hi)
        ours = {}
        for layer, kind, idx in got["removed"]:
            ours.setdefault((layer, kind), set()).add(idx)
        ok, notes = set(ours) <= set(want), []
        for key, (ws, gap) in want.items():
            os_ = ours.get(key, set())
            if os_ != ws:
                if len(os_) == len(ws) and gap < TOL:
                    notes.append(f"layer {key[0]} kind {key[1]}: near-tie (gap {gap:.1e}) swapped")
                else:
                    ok = False
                    notes.append(f"layer {key[0]} kind {key[1]}: ours {sorted(os_)} want {sorted(ws)}")
        n = sum(len(s) for s, _ in want.values())
        verdict = ("same as the reference" if ok else "differ") + ("; " + "; ".join(notes) if notes else "")
        C.check(ok and n > 0, f"{label} prune {crit}/{agg} r={r} layers {lo}:{hi}: {n} structures {verdict}")


def tiny(C, tool, tmp):
    for name in ("gqa_tied_f32", "mha_untied_bias_f16", "pruned_f32"):
        spec = R.MODELS[name]
        stored, w = R.make_weights(spec, 31)
        folder = os.path.join(tmp, name)
        R.write_hf(spec, stored, folder)
        gen = torch.Generator().manual_seed(77)
        ids = torch.randint(0, spec["vocab"], (4, 16), generator=gen)
        ids_path = os.path.join(tmp, f"{name}.ids")
        with open(ids_path, "w") as f:
            f.write(f"{ids.shape[0]} {ids.shape[1]}\n" + " ".join(str(int(i)) for i in ids.flatten()) + "\n")
        nl = len(spec["layers"])
        check_model(C, tool, [folder, "--ids", ids_path], spec, w, ids, name, 1, nl, True)


def stories(C, tool, dump, tmp):
    shared = os.environ.get("PB_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    gguf = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    data = os.path.join(shared, "data")
    if not os.path.exists(gguf) or not os.path.isdir(data):
        print(f"SKIP: {gguf} or {data} not found (set PB_SHARED)", file=sys.stderr)
        sys.exit(77)
    tdir = os.path.join(tmp, "stories_tensors")
    os.makedirs(tdir, exist_ok=True)
    r = subprocess.run([dump, "--tensors", tdir, gguf], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pb_dump: {r.stderr.strip()}")
    with open(os.path.join(tdir, "model.json")) as f:
        info = json.load(f)
    w = {}
    for name, t in info["tensors"].items():
        x = np.fromfile(os.path.join(tdir, name + ".f32"), dtype="<f4").astype(np.float64)
        rows, cols = t["shape"]
        w[name] = torch.from_numpy(x.reshape(rows, cols) if rows > 1 else x)
    spec = {"eps": info["norm_eps"], "theta": info["rope_theta"], "rope_scaling": None, "tied": info["tied"],
            "layers": info["layers"]}
    assert info["rope_scaling"]["type"] == 0, "stories260K has no rope scaling"
    margs = [gguf, "--calib", "tinystories", "--data-dir", data, "--n", "8", "--T", "64"]
    calib = run_tool(tool, margs + ["--print-calib"])["calib"]
    ids = torch.tensor(calib, dtype=torch.long)
    C.check(ids.shape == (8, 64) and int(ids[0, 0]) == info["bos_id"], "stories260K: 8 windows of 64, BOS first")
    check_model(C, tool, margs, spec, w, ids, "stories260K", 1, 4, False)


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    flags = [a for a in args if a.startswith("--")]
    args = [a for a in args if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tool, dump = args
    torch.set_num_threads(2)
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_width_reference")
    os.makedirs(tmp, exist_ok=True)
    C = Checker()
    if "--stories" in flags:
        stories(C, tool, dump, tmp)
    else:
        tiny(C, tool, tmp)
    print(f"prune_width_reference: {C.failures} failure(s)")
    return 1 if C.failures else 0


if __name__ == "__main__":
    sys.exit(main())

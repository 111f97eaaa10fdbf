"""test_depth_reference.py — depth pruning (core/prune/depth.c) against an independent float64
PyTorch implementation of Shortened LLaMA's three criteria (reference/shortened-llama.md §1).

Models: two tiny random HF models written with tests/model/test_hf_reference.py's builders
(a 6-layer GQA model with o/down biases and an untied head, so that protection matters and
biases must stay out of the scores; and its non-uniform "pruned_f32" model, whose layers lack
attention or MLP, so that absent modules have no candidate), and the real stories260K
(tensors exported by tests/tools/pb_dump --tensors). Calibration: random windows written here
for the random models; for stories260K the contiguous TinyStories windows that
pb_calib_load cuts (depth_dump prints them, and exactly those ids feed torch).

Checked, for magnitude, taylor and ppl:
  - the importance scores at block, attn and mlp granularity (null where a layer lacks the
    module), against the float64 reference;
  - the structures removed by one-shot pruning (k = 1, 2) and iterative pruning (k = 2,
    re-scored on the pruned model), with and without protection, at block, attn, mlp and
    joint-module granularity; k beyond the unprotected candidates must fail with the
    "needs more than the N unprotected ones" error; params_after = params_before - the
    removed structures' parameters (weights, norms, biases).

usage: test_depth_reference.py DEPTH_DUMP PB_DUMP      Exit 77 (skip) when torch or safetensors
is missing; stories260K is skipped (with a note) when ../shared is absent."""
import json
import math
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

# Tolerances on each score, |ours - ref| / |ref|:
# - magnitude sums the very fp32 weights in double on both sides; only the summation order
#   differs (~1e-16 per term, a few 1e-13 over 1e5 terms), so 1e-9 leaves 4 orders of margin
#   and still catches a missing or extra tensor (a norm gain alone is ~1e-3 of a block).
# - taylor: our fp32 gradients carry relative errors up to ~1e-5 of the tensor's largest entry
#   (tests/train/test_grad_torch.py bounds them at 1e-4); summing |w*g| averages independent
#   rounding, so the sum is off by ~1e-6. ppl: exp of a mean NLL from fp32 logits (relative
#   error ~1e-6, NLL error ~1e-6 absolute). 1e-4 is 100x that, while a wrong loss
#   normalisation, tensor set or removed module is off by 1e-2 or more.
TOL = {"magnitude": 1e-9, "taylor": 1e-4, "ppl": 1e-4}
KIND_ORDER = {"block": 0, "attn": 1, "mlp": 2}
ATTN_T = ["input_layernorm.weight"] + [f"self_attn.{p}_proj.weight" for p in "qkvo"]
MLP_T = ["post_attention_layernorm.weight"] + [f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")]


class Ref:
    """Float64 reference scores for one model and one set of calibration windows."""

    def __init__(self, spec, w, ids):
        self.spec, self.w, self.ids = spec, w, ids
        self.cache = {}

    def has(self, i, kind):
        L = self.spec["layers"][i]
        return kind == "block" or L[kind]

    def logits(self, off, w=None):
        """Logits of the windows with the structures in off ((layer, kind) pairs) switched off."""
        layers = []
        for i, L in enumerate(self.spec["layers"]):
            L = dict(L)
            if (i, "block") in off or (i, "attn") in off:
                L["attn"] = False
            if (i, "block") in off or (i, "mlp") in off:
                L["mlp"] = False
            layers.append(L)
        return R.reference_logits(dict(self.spec, layers=layers), w or self.w, self.ids)

    def loss(self, off, w=None):
        """Mean next-token NLL over all windows with the structures in off switched off."""
        logp = torch.log_softmax(self.logits(off, w)[:, :-1], dim=-1)
        return -logp.gather(-1, self.ids[:, 1:, None]).mean()

    def parts(self, i, kind):
        p = f"model.layers.{i}."
        L = self.spec["layers"][i]
        names = []
        if kind in ("block", "attn") and L["attn"]:
            names += [p + t for t in ATTN_T]
        if kind in ("block", "mlp") and L["mlp"]:
            names += [p + t for t in MLP_T]
        return names

    def taylor_all(self, off):
        key = ("taylor", off)
        if key not in self.cache:
            w = dict(self.w)
            for n in w:
                if ".layers." in n:
                    w[n] = w[n].clone().requires_grad_(True)
            self.loss(off, w).backward()
            self.cache[key] = {n: float((t * t.grad).abs().sum()) if t.grad is not None else 0.0
                               for n, t in w.items() if ".layers." in n}
        return self.cache[key]

    def score(self, crit, i, kind, off=frozenset()):
        if crit == "magnitude":
            return sum(float(self.w[n].abs().sum()) for n in self.parts(i, kind))
        if crit == "taylor":
            t = self.taylor_all(off)
            return sum(t[n] for n in self.parts(i, kind))
        key = ("ppl", off, i, kind)
        if key not in self.cache:
            with torch.no_grad():
                self.cache[key] = math.exp(float(self.loss(off | {(i, kind)})))
        return self.cache[key]

    def params(self, i, kind):
        p = f"model.layers.{i}."
        sub = {"block": ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"),
               "attn": ("input_layernorm", "self_attn"), "mlp": ("post_attention_layernorm", "mlp")}[kind]
        return sum(t.numel() for n, t in self.w.items() if n.startswith(p) and n[len(p):].split(".")[0] in sub)

    def candidates(self, gran, pf, pl, off):
        nl = len(self.spec["layers"])
        kinds = ["attn", "mlp"] if gran == "module" else [gran]
        return [(i, k) for i in range(pf, nl - pl) for k in kinds
                if self.has(i, k) and (i, k) not in off and (i, "block") not in off]

    def ranked(self, crit, cands, off):
        s = [(self.score(crit, i, k, off), i, KIND_ORDER[k], k) for i, k in cands]
        return sorted(s)

    def prune(self, crit, gran, k, pf, pl, iterative):
        """(removed list or None when k is too many, ambiguous: a near-tie decided a choice)."""
        off, removed, ambiguous = frozenset(), [], False
        if len(self.candidates(gran, pf, pl, off)) < k:
            return None, False
        for step in range(k if iterative else 1):
            r = self.ranked(crit, self.candidates(gran, pf, pl, off), off)
            take = 1 if iterative else k
            if take < len(r) and abs(r[take][0] - r[take - 1][0]) <= 2 * TOL[crit] * abs(r[take][0]):
                ambiguous = True
            for s in r[:take]:
                removed.append((s[1], s[3]))
            off = off | {(s[1], s[3]) for s in r[:take]}
        return removed, ambiguous


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a)


def check_model(name, ref, out, pf, pl):
    """Compares depth_dump's JSON with the reference; returns the number of failures."""
    failures = 0
    nl = len(ref.spec["layers"])
    worst = {c: 0.0 for c in TOL}
    for crit in TOL:
        for gran in ("block", "attn", "mlp"):
            ours = out["scores"][crit][gran]
            if len(ours) != nl:
                print(f"FAIL {name} {crit} {gran}: {len(ours)} scores for {nl} layers")
                failures += 1
                continue
            for i in range(nl):
                if not ref.has(i, gran):
                    if ours[i] is not None:
                        print(f"FAIL {name} {crit} {gran} layer {i}: score {ours[i]} for an absent module")
                        failures += 1
                    continue
                r = ref.score(crit, i, gran)
                e = rel(ours[i], r) if ours[i] is not None else math.inf
                worst[crit] = max(worst[crit], e)
                if not e <= TOL[crit]:
                    print(f"FAIL {name} {crit} {gran} layer {i}: ours {ours[i]} ref {r} (relative error {e:.2e})")
                    failures += 1
    for crit, e in worst.items():
        print(f"{'ok  ' if e <= TOL[crit] else 'FAIL'} {name}: {crit} scores, worst relative error {e:.2e} "
              f"(tolerance {TOL[crit]:g})")
    n_cases = n_amb = n_err = n_differ = 0
    for case in out["prune"]:
        crit, gran, k, it = case["criterion"], case["granularity"], case["k"], case["iterative"]
        a, b = case["protect"]
        want, amb = ref.prune(crit, gran, k, a, b, it)
        what = f"{name} {crit} {gran} k={k} protect={a},{b}{' iterative' if it else ''}"
        n_cases += 1
        n_err += want is None
        if it and want is not None:   # does re-scoring change the outcome here?
            n_differ += sorted(want) != sorted(ref.prune(crit, gran, k, a, b, False)[0])
        if want is None:
            msg = case.get("error", "")
            if "needs more than the" not in msg or "unprotected ones" not in msg:
                print(f"FAIL {what}: expected the too-many error, got {case.get('removed', msg)}")
                failures += 1
            continue
        if "error" in case:
            print(f"FAIL {what}: {case['error']}")
            failures += 1
            continue
        got = [(l, kd) for l, kd in case["removed"]]
        same = got == want if it else sorted(got) == sorted(want)
        if not same:
            if amb:
                n_amb += 1
                print(f"note {what}: ours {got}, reference {want}: decided by a near-tie within the tolerance")
            else:
                print(f"FAIL {what}: removed {got}, reference {want}")
                failures += 1
        gone = sum(ref.params(l, kd) for l, kd in got)
        if case["params_before"] - case["params_after"] != gone:
            print(f"FAIL {what}: params {case['params_before']} -> {case['params_after']}, removed {gone}")
            failures += 1
    print(f"{'ok  ' if not failures else 'FAIL'} {name}: {n_cases} prune cases, protect {pf},{pl} ({n_err} expected "
          f"too-many errors, {n_differ} iterative cases whose set differs from one-shot, {n_amb} near-ties)")
    return failures


def run_dump(dump, args):
    r = subprocess.run([dump, "--threads", "2", *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return False
    return True


def random_model(tmp, dump, name, spec, seed, pf, pl):
    stored, w = R.make_weights(spec, seed)
    folder = os.path.join(tmp, name)
    R.write_hf(spec, stored, folder)
    g = torch.Generator().manual_seed(seed + 1000)
    ids = torch.randint(3, spec["vocab"], (4, 24), generator=g)
    ids[:, 0] = 1
    ids_path, out_path = os.path.join(tmp, f"{name}.ids"), os.path.join(tmp, f"{name}.json")
    with open(ids_path, "w") as f:
        f.write(f"{ids.shape[0]} {ids.shape[1]}\n" + " ".join(str(int(i)) for i in ids.flatten()) + "\n")
    if not run_dump(dump, [folder, "--ids", ids_path, "--protect", str(pf), str(pl), "--out", out_path]):
        return 1
    with open(out_path) as f:
        out = json.load(f)
    if out["windows"] != ids.tolist():
        print(f"FAIL {name}: depth_dump read other windows than it was given")
        return 1
    return check_model(name, Ref(spec, w, ids), out, pf, pl)


def load_stories(tmp, pb_dump, shared):
    """(gguf path, spec, float64 weights) of stories260K via pb_dump --tensors; None when absent."""
    gguf = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    if not os.path.exists(gguf):
        print(f"note: {gguf} absent; stories260K part skipped")
        return None
    tdir = os.path.join(tmp, "stories_tensors")
    os.makedirs(tdir, exist_ok=True)
    r = subprocess.run([pb_dump, gguf, "--tensors", tdir], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pb_dump --tensors: {r.stderr.strip()}")
    with open(os.path.join(tdir, "model.json")) as f:
        info = json.load(f)
    w = {}
    for n, t in info["tensors"].items():
        a = np.fromfile(os.path.join(tdir, n + ".f32"), dtype="<f4").astype(np.float64)
        rows, cols = t["shape"]
        w[n] = torch.from_numpy(a.reshape(rows, cols) if rows > 1 else a)
    spec = {"dim": info["dim"], "vocab": info["vocab_size"], "eps": info["norm_eps"], "theta": info["rope_theta"],
            "tied": info["tied"], "layers": info["layers"], "bos": info["bos_id"]}
    return gguf, spec, w


def stories(tmp, dump, pb_dump, shared):
    try:
        got = load_stories(tmp, pb_dump, shared)
    except RuntimeError as e:
        print(f"FAIL {e}")
        return 1
    if got is None:
        return 0
    gguf, spec, w = got
    out_path = os.path.join(tmp, "stories.json")
    data = os.path.join(shared, "data")
    if not run_dump(dump, [gguf, "--calib", "tinystories", "--data-dir", data, "--n", "6", "--T", "64",
                           "--protect", "1", "1", "--out", out_path]):
        return 1
    with open(out_path) as f:
        out = json.load(f)
    ids = torch.tensor(out["windows"], dtype=torch.long)
    if ids.shape != (6, 64) or not bool((ids[:, 0] == spec["bos"]).all()):
        print(f"FAIL stories260K: windows of shape {tuple(ids.shape)} not all starting with BOS")
        return 1
    return check_model("stories260K", Ref(spec, w, ids), out, 1, 1)


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump, pb_dump = args
    torch.set_num_threads(2)
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "prune_depth_reference")
    os.makedirs(tmp, exist_ok=True)
    deep6 = dict(dim=48, vocab=73, eps=1e-5, theta=10000.0, tied=False, dtype="F32",
                 layers=[R.layer(6, 2, 8, 96, ["o", "down"])] * 6)
    failures = random_model(tmp, dump, "deep6", deep6, 11, 2, 1)
    # protect 2,1 leaves the pruned model a single MLP candidate (layer 3): k = 2 must fail there
    failures += random_model(tmp, dump, "pruned_f32", R.MODELS["pruned_f32"], 12, 2, 1)
    shared = os.environ.get("PB_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    failures += stories(tmp, dump, pb_dump, shared)
    print(f"prune_depth_reference: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

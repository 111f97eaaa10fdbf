"""test_optim_torch.py — AdamW, the learning-rate schedules and gradient clipping against
torch.optim.AdamW, transformers' get_{linear,cosine,constant}_schedule_with_warmup and
torch.nn.utils.clip_grad_norm_, on random parameters and gradients over 40 steps, with
the HF Trainer's order: clip, optimizer.step() (at the scheduler's current lr), then
scheduler.step().

usage: test_optim_torch.py OPTIM_DUMP      Exit 77 (skip) without torch or transformers."""
import json
import os
import subprocess
import sys

try:
    import torch
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(77)

# Parameters after 40 fp32 AdamW steps: each step rounds at ~6e-8 relative and torch may
# order the update's operations differently (lerp vs mul/add for the first moment), so the
# trajectories drift by ~1e-7 of the step size per step. 1e-5 of the parameters' scale is
# that with a wide margin; a wrong bias correction, decay placement or eps placement moves
# parameters by 1e-3 or more within a few steps. lr and norms are double: 1e-9.
TOL, EXACT = 1e-5, 1e-9
STEPS = 40


def run_case(dump, tmp, name, sched, warmup, wd, max_norm, gscale):
    g = torch.Generator().manual_seed(len(name))
    shapes, decay = [(7, 5), (13,), (3, 4)], [True, False, True]
    params = [torch.rand(s, generator=g, dtype=torch.float32) * 2 - 1 for s in shapes]
    grads = [[(torch.rand(s, generator=g) * 2 - 1) * gscale * (1 + k % 3) for s in shapes] for k in range(STEPS)]
    spec = {"params": [p.flatten().tolist() for p in params], "decay": decay,
            "grads": [[x.flatten().tolist() for x in gs] for gs in grads], "lr": 3e-2, "beta1": 0.9,
            "beta2": 0.999, "eps": 1e-8, "weight_decay": wd, "max_grad_norm": max_norm, "schedule": sched,
            "warmup": warmup, "total": STEPS}
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    r = subprocess.run([dump, path], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {name}: {r.stderr.strip()}", file=sys.stderr)
        return 1
    ours = json.loads(r.stdout)

    ps = [torch.nn.Parameter(p.clone()) for p in params]
    groups = [{"params": [p for p, d in zip(ps, decay) if d], "weight_decay": wd},
              {"params": [p for p, d in zip(ps, decay) if not d], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=3e-2, betas=(0.9, 0.999), eps=1e-8)
    make = {"linear": lambda: get_linear_schedule_with_warmup(opt, warmup, STEPS),
            "cosine": lambda: get_cosine_schedule_with_warmup(opt, warmup, STEPS),
            "constant": lambda: get_constant_schedule_with_warmup(opt, warmup)}[sched]
    sch = make()
    fails, worst = 0, 0.0
    for k in range(STEPS):
        for p, x in zip(ps, grads[k]):
            p.grad = x.clone()
        norm = float(torch.nn.utils.clip_grad_norm_(ps, max_norm)) if max_norm > 0 else \
            float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in ps)))
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sch.step()
        if abs(ours["lrs"][k] - lr) > EXACT * max(lr, 1e-3):
            fails += 1
            print(f"FAIL: {name} step {k}: lr {ours['lrs'][k]} vs {lr}", file=sys.stderr)
        # torch sums the norm in fp32, we in double: ~1e-7 relative
        if abs(ours["norms"][k] - norm) > 1e-6 * norm:
            fails += 1
            print(f"FAIL: {name} step {k}: grad norm {ours['norms'][k]} vs {norm}", file=sys.stderr)
        for i, p in enumerate(ps):
            got = torch.tensor(ours["params"][k][i]).view(p.shape)
            e = float((got - p.detach()).abs().max() / p.detach().abs().max())
            worst = max(worst, e)
            if e > TOL:
                fails += 1
                print(f"FAIL: {name} step {k} param {i}: rel err {e:.3g}", file=sys.stderr)
    print(f"  {name:28s} worst parameter rel err {worst:.2e}")
    return fails


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    tmp = os.path.join(os.environ.get("PB_TMP", "/tmp"), "optim_torch")
    os.makedirs(tmp, exist_ok=True)
    fails = 0
    # clipping active (norm ~5 > 1), weight decay on the matrices only
    fails += run_case(args[0], tmp, "linear_warmup_clip_wd", "linear", 10, 0.1, 1.0, 1.0)
    # clipping inactive (small gradients), no decay
    fails += run_case(args[0], tmp, "cosine_warmup_noclip", "cosine", 5, 0.0, 1.0, 0.01)
    fails += run_case(args[0], tmp, "constant_noclip_off", "constant", 3, 0.01, 0.0, 1.0)
    fails += run_case(args[0], tmp, "linear_nowarmup", "linear", 0, 0.0, 1.0, 1.0)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

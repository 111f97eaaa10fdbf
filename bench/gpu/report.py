#!/usr/bin/env python3
"""report.py — one Markdown report of the GPU runs, ready to paste into bench/RESULTS.md.

    report.py SOURCE... [--out FILE]

SOURCE: a results folder (run.sh's $PB_GPU_WORK/results) or a results-*.tar.gz that run.sh left
in $OUT; give both calls' archives to get one table (later sources win for the same file).
Reads env.json, models-*.json (make_model.py), pb.<model>.json (pb_bench.py), hf.<model>.json
(hf_reference.py), tests.jsonl, agree.json (tests/cuda/test_cuda_agree.py), agree7b.*.json and
failures.jsonl, and prints:
  - the device, date, versions, measured copy bandwidth;
  - PPL scoring positions/s of both stacks at T = 128 and 2048, and prunebench / HF (target >= 1.5);
  - generation: decode ms/token at batch 1 against the floor = weight bytes read per token
    (every weight but the embedding table, bf16) / measured bandwidth (target <= 1.3x), the
    same for HF, and tokens/s at batch 1, 64, 256 with prunebench / HF;
  - dense vs depth vs width: each stack's speed relative to its own dense model;
  - the agreement tests and anything that failed or was skipped.
Missing pieces print as "-" so that a partial run still reports what it has."""
import argparse
import io
import json
import os
import sys
import tarfile

MODELS = ("dense", "depth", "width")


def load_sources(paths):
    files = {}
    for p in paths:
        if os.path.isdir(p):
            for n in sorted(os.listdir(p)):
                fp = os.path.join(p, n)
                if os.path.isfile(fp):
                    files.setdefault(n, []).append(open(fp, encoding="utf-8", errors="replace").read())
        elif p.endswith((".tar.gz", ".tgz")):
            with tarfile.open(p) as t:
                for m in t.getmembers():
                    if m.isfile():
                        files.setdefault(os.path.basename(m.name), []).append(
                            t.extractfile(m).read().decode("utf-8", "replace"))
        else:
            sys.exit(f"report.py: {p}: not a folder or .tar.gz")
    return files


def js(files, name):
    """The last source's JSON of that name, or None."""
    for text in reversed(files.get(name, [])):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return None


def jsonl(files, name):
    out = []
    for text in files.get(name, []):
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def f(x, fmt="{:.0f}"):
    return "-" if x is None else fmt.format(x)


def ratio(a, b, fmt="{:.2f}x"):
    return "-" if a is None or b is None or b == 0 else fmt.format(a / b)


def by(lst, key, val):
    for r in lst or []:
        if r.get(key) == val and "error" not in r:
            return r
    return None


def err_of(lst, key, val):
    for r in lst or []:
        if r.get(key) == val and "error" in r:
            return r["error"]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--out")
    a = ap.parse_args()
    files = load_sources(a.sources)
    o = io.StringIO()
    w = lambda s="": print(s, file=o)   # noqa: E731

    envs = [json.loads(t) for t in files.get("env.json", []) if t.strip()]
    info = {}
    for m in files:
        if m.startswith("models-") and m.endswith(".json"):
            d = js(files, m) or {}
            info.update(d.get("models", {}))
    pb = {m: js(files, f"pb.{m}.json") for m in MODELS}
    hf = {m: js(files, f"hf.{m}.json") for m in MODELS}
    bw = next((h["bandwidth"] for h in hf.values() if h and "bandwidth" in h), None)
    bw_bps = bw["bytes_per_s"] if bw else None

    e = envs[-1] if envs else {}
    dry = any(x.get("dry_run") for x in envs)
    w("## GPU benchmarks (issue 7)" + ("  — DRY RUN (tiny models on the CPU: the figures mean nothing)" if dry else ""))
    w()
    gpu = e.get("gpu", "cpu" if dry else "?")
    w(f"- Device: {gpu}" + (f", {e['gpu_mem_gib']} GiB, {e.get('sms')} SMs, cc {e.get('cc')}" if e.get("gpu_mem_gib") else "")
      + (f"; nvidia-smi: {e['nvidia_smi']}" if e.get("nvidia_smi") else "") + f"; {e.get('cpus', '?')} CPU cores")
    w(f"- Date: {', '.join(sorted({x.get('date', '?') for x in envs})) or '?'}")
    b = e.get("build", {})
    w(f"- prunebench {b.get('git_rev', '?')} (+{b.get('git_dirty_files', '?')} changed files, sources {b.get('src_hash', '?')}),"
      f" CUDA archs {b.get('cuda_archs', '?')}, {b.get('nvcc', '?')}")
    w(f"- Reference: torch {e.get('torch', '?')} (CUDA {e.get('torch_cuda', '?')}, cuDNN {e.get('cudnn', '?')}), "
      f"transformers {e.get('transformers', '?')}, LlamaForCausalLM attn_implementation="
      f"{next((h.get('attn_implementation') for h in hf.values() if h), '?')}")
    dt = next((p.get("dtype") for p in pb.values() if p), "?")
    w(f"- Weights: {dt}, random N(0, 0.02), LLaMA-7B shapes (bench/gpu/make_model.py); the same files for both stacks")
    w(f"- Copy bandwidth (device-to-device, bytes read + written / s, median of {bw['reps']}): "
      f"{bw_bps / 1e12:.2f} TB/s" if bw else "- Copy bandwidth: not measured")
    w()

    # models
    w("| model | layers | params | removed | shapes |")
    w("|---|---|---|---|---|")
    for m in MODELS:
        i = info.get(m)
        if i:
            extra = (f" (blocks {i['removed_blocks']})" if "removed_blocks" in i else "") + \
                (f" (LLM-Pruner r = {i['llm_pruner_ratio']}, layers {i['pruned_layers'][0]}..{i['pruned_layers'][1]})"
                 if "llm_pruner_ratio" in i else "")
            w(f"| {m} | {i['layers']} | {i['params'] / 1e9:.3f}B | {100 * i['removed_fraction']:.1f}%{extra} | "
              f"{', '.join(i['shapes'])} |")
    w()

    # scoring
    w("### PPL scoring (positions/s; same tokens per forward and token budget on both stacks)")
    w()
    w("| model | T | batch | prunebench | HF transformers | prunebench / HF (target >= 1.5) |")
    w("|---|---|---|---|---|---|")
    for m in MODELS:
        for T in sorted({r["seq_len"] for s in (pb[m], hf[m]) if s for r in s.get("score", [])}):
            p, h = by(pb[m] and pb[m]["score"], "seq_len", T), by(hf[m] and hf[m]["score"], "seq_len", T)
            pv, hv = p and p["positions_per_s"], h and h["positions_per_s"]
            bt = (p or h or {}).get("batch", "-")
            pe = err_of(pb[m] and pb[m]["score"], "seq_len", T)
            w(f"| {m} | {T} | {bt} | {f(pv) if pv else 'error: ' + str(pe) if pe else '-'} | {f(hv)} | {ratio(pv, hv)} |")
    w()

    # generation
    w("### Generation (random 128-token prompts, 128 new tokens, greedy; decode = mean step after the first token)")
    w()
    w("| model | batch | prunebench decode ms/token | HF decode ms/token | floor ms/token | prunebench / floor "
      "(target <= 1.3 at batch 1) | prunebench tokens/s | HF tokens/s | prunebench / HF | peak GiB (pb / HF) |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for m in MODELS:
        floor = None
        if hf[m] and bw_bps:
            floor = 1e3 * hf[m]["weight_bytes_read_per_token"] / bw_bps
        batches = sorted({r["batch"] for s in (pb[m], hf[m]) if s for r in s.get("gen", [])})
        for B in batches:
            p, h = by(pb[m] and pb[m]["gen"], "batch", B), by(hf[m] and hf[m]["gen"], "batch", B)
            pe, he = err_of(pb[m] and pb[m]["gen"], "batch", B), err_of(hf[m] and hf[m]["gen"], "batch", B)
            pd, hd = p and p["decode_ms_per_token"], h and h["decode_ms_per_token"]
            pt, ht = p and p["tokens_per_s"], h and h["tokens_per_s"]
            fl = floor if B == 1 else None
            mem = f"{f(p and p.get('peak_rss_bytes') and p['peak_rss_bytes'] / 2**30, '{:.1f}')} / " \
                  f"{f(h and h.get('peak_mem_bytes') and h['peak_mem_bytes'] / 2**30, '{:.1f}')}"
            w(f"| {m} | {B} | {f(pd, '{:.2f}') if p else ('error: ' + pe[:60] if pe else '-')} | "
              f"{f(hd, '{:.2f}') if h else ('error: ' + he[:60] if he else '-')} | {f(fl, '{:.2f}')} | "
              f"{ratio(pd, fl)} | {f(pt)} | {f(ht)} | {ratio(pt, ht)} | {mem} |")
    w()
    w("Floor: every weight except the embedding table read once per token (bf16) over the measured copy bandwidth; "
      "prunebench's KV cache is fp32 and adds its reads on top (at batch 1 about 1.5% of the weight bytes at 256 positions).")
    w()

    # width vs depth
    w("### Dense vs depth vs width (each stack relative to its own dense model; > 1 = faster)")
    w()
    w("| model | stack | scoring T=128 | scoring T=2048 | batch-1 decode | tokens/s batch 64 | tokens/s batch 256 |")
    w("|---|---|---|---|---|---|---|")
    for m in ("depth", "width"):
        for name, S in (("prunebench", pb), ("HF", hf)):
            d, x = S["dense"], S[m]
            if not d or not x:
                continue

            def sc(T):
                a_, b_ = by(x["score"], "seq_len", T), by(d["score"], "seq_len", T)
                return ratio(a_ and a_["positions_per_s"], b_ and b_["positions_per_s"])

            def gn(B, key, inverse=False):
                a_, b_ = by(x["gen"], "batch", B), by(d["gen"], "batch", B)
                if inverse:
                    return ratio(b_ and b_[key], a_ and a_[key])
                return ratio(a_ and a_[key], b_ and b_[key])
            w(f"| {m} | {name} | {sc(128)} | {sc(2048)} | {gn(1, 'decode_ms_per_token', True)} | "
              f"{gn(64, 'tokens_per_s')} | {gn(256, 'tokens_per_s')} |")
    w()

    # agreement and failures
    w("### Agreement and tests")
    w()
    for t in jsonl(files, "tests.jsonl"):
        w(f"- test {t['test']}: {t['status']} ({t['seconds']} s)")
    ag = js(files, "agree.json")
    if ag:
        er = ag.get("errors", {}).get("measured", {})
        for dt_ in ("f32", "f16", "bf16"):
            if dt_ in er:
                w(f"- cuda_agree {dt_}: stories260K logit error max {er[dt_]['dz_max']:.2e}, rms {er[dt_]['dz_rms']:.2e}"
                  f"; ppl diff {f(ag.get('ppl', {}).get(dt_, {}).get('diff'), '{:.1e}')}"
                  f"; zero-shot compared {ag.get('zeroshot', {}).get(dt_, {}).get('compared', '-')}, excluded "
                  f"{ag.get('zeroshot', {}).get(dt_, {}).get('excluded', '-')}"
                  f"; greedy identical for {ag.get('generate', {}).get(dt_, {}).get('guaranteed', '-')} tokens")
        for x in ag.get("failures", []):
            w(f"  - FAIL {x}")
    for n in sorted(files):
        if n.startswith("agree7b.") and n.endswith(".json"):
            r = js(files, n) or {}
            for c in r.get("checks", []):
                w(f"- {'ok' if c['ok'] else 'FAIL'}: {c['what']}")
    fails = jsonl(files, "failures.jsonl")
    for x in fails:
        w(f"- FAILURE ({x.get('phase')}): {x.get('what')}")
    skipped = [(m, s) for m in MODELS for S in (pb, hf) if S[m] for s in S[m].get("skipped", [])]
    for m, s in skipped:
        w(f"- skipped on {m} (time budget): {s}")
    text = o.getvalue()
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

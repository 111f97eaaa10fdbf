"""test_compare.py — `prunebench compare` on experiment folders written here with h5py
(fixtures.py: the layout core/exp/results.h documents, fixed- and variable-length strings).

Checks the md, tex and csv renderings against the fixture numbers: the row order (dense first,
grouped by model, published rows under the run they match, failed runs with their error), the
deltas to the dense run, to --baseline (by run_id and by label) and to the published rows; and
the error contract: one stderr line "prunebench: error: ...", exit 1 (2 for usage errors)."""
import csv
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import h5py  # noqa: F401
    import numpy  # noqa: F401
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)
import fixtures as F  # noqa: E402

BIN = os.environ.get("PB_BIN", "build/prunebench")
TMP = os.path.join(os.environ.get("PB_TMP", tempfile.gettempdir()), "exp_compare")
# csv numbers are printed with 10 significant digits; fixture values are below 1e4, so anything
# within 1e-5 is the same number (and a wrong delta is off by at least 0.01)
TOL = 1e-5

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(*args):
    return subprocess.run([BIN, "compare", *args], capture_output=True, text=True, timeout=120)


def ok(*args):
    p = run(*args)
    if p.returncode != 0:
        raise SystemExit(f"prunebench compare {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def error_line(p, code, *needles, what=""):
    lines = p.stderr.strip().splitlines()
    check(p.returncode == code, f"{what}: exit {p.returncode}, expected {code} ({p.stderr.strip()})")
    check(len(lines) == 1, f"{what}: {len(lines)} stderr lines, expected one: {p.stderr!r}")
    prefix = "prunebench: error: " if code == 1 else "prunebench compare: usage error: "
    check(bool(lines) and lines[0].startswith(prefix), f"{what}: stderr does not start with {prefix!r}: {p.stderr!r}")
    for n in needles:
        check(n in p.stderr, f"{what}: {n!r} not in {p.stderr!r}")
    check(p.stdout == "", f"{what}: printed a table anyway")


def num(s):
    return float(s) if s != "" else math.nan


def close(a, b):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def md_rows(text):
    """Table rows of a markdown table as lists of cells (header and rule excluded)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split(" | ")] for r in rows[2:]], rows[0]


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    sweep, vlen = os.path.join(TMP, "sweep"), os.path.join(TMP, "vlen")
    rows = F.make_experiment(sweep, published=F.PUBLISHED)
    rows_v = F.make_experiment(vlen, strings="vlen", models=(("tiny", 0.0), ("small", 1.0)))
    by_id = {r["run_id"]: r for r in rows}
    dense = next(r for r in rows if r["method"] == "dense")
    taylor20 = next(r for r in rows if r["method"] == "taylor+" and r["ratio"] == 0.2)
    failed = next(r for r in rows if r["status"] == "failed")

    # ---- markdown ----------------------------------------------------------------------------
    md = ok(sweep)
    body, header = md_rows(md)
    for h in ("WikiText-2", "PTB", "BoolQ", "PIQA", "HellaSwag", "WinoGrande", "ARC-e", "ARC-c", "OBQA", "Mean",
              "#params", "Latency", "Throughput"):
        check(h in header, f"md: header lacks {h}: {header}")
    check("C4" not in header and "TinyStories" not in header, "md: all-NaN perplexity columns are shown")
    check(body[0][1] == "dense" and body[0][0] == "tiny", f"md: first row is not tiny's dense run: {body[0]}")
    check(body[1][1] == "dense (paper)", f"md: the published dense row is not under ours: {body[1]}")
    # 17.66 - 12.62 = +5.04 (WikiText-2), 30.75 - 22.13 = +8.62 (PTB)
    t_line = next(r for r in body if r[1] == "taylor+" and r[3] == "20%")
    check("17.66 (+5.04)" in t_line and "30.75 (+8.62)" in t_line, f"md: taylor+ 20% deltas: {t_line}")
    check("5.39B" in t_line, f"md: taylor+ 20% #params: {t_line}")
    # BoolQ: fraction 0.7118 in the index -> 71.18, dense 73.18 -> -2.00
    check("71.18 (-2.00)" in t_line, f"md: accuracy x100 with delta: {t_line}")
    i = body.index(t_line)
    p_line = body[i + 1]
    check(p_line[1] == "taylor+ (paper)", f"md: published taylor+ row not right under ours: {p_line}")
    # ours - paper: 17.66 - 20.21 = -2.55
    check("20.21 (ours -2.55)" in p_line, f"md: ours - paper delta: {p_line}")
    f_line = next(r for r in body if r[1] == "llm-pruner")
    check("failed" in f_line and body.index(f_line) > body.index(t_line), f"md: failed run row: {f_line}")
    check("calibration: out of memory while scoring layer 3" in md, "md: the failed run's error is not listed")
    llama = [r for r in body if r[0] == "LLaMA-7B"]
    check(len(llama) == 1 and "14.62" in llama[0] and body.index(llama[0]) == len(body) - 1,
          f"md: unmatched published model not in its own group at the end: {llama}")
    ratios = [float(r[3].rstrip("%")) for r in body if r[0] == "tiny" and "paper" not in r[1] and r[1] != "llm-pruner"]
    check(ratios == sorted(ratios), f"md: rows not ordered by ratio: {ratios}")

    # ---- csv ---------------------------------------------------------------------------------
    recs = parse_csv(ok(sweep, "--format", "csv"))
    ours = [r for r in recs if r["source"] == "ours"]
    check(len(ours) == len(rows), f"csv: {len(ours)} of our rows, expected {len(rows)}")
    check(len([r for r in recs if r["source"] == "paper"]) == 3, "csv: published rows missing")
    for rec in ours:
        r = by_id.get(rec["run_id"])
        if r is None:
            check(False, f"csv: unknown run {rec['run_id']}")
            continue
        check(rec["status"] == r["status"] and rec["model"] == r["model"] and rec["method"] == r["method"],
              f"csv: identity of {rec['run_id']}")
        check(rec["label"] == r["label"], f"csv: label of {rec['run_id']} (from the run file): {rec['label']}")
        for col in ("ppl_wikitext2", "ppl_ptb", "latency_ms", "throughput"):
            check(close(num(rec[col]), r[col]), f"csv: {rec['run_id']} {col} {rec[col]} != {r[col]}")
            want = r[col] - dense[col] if r is not dense else math.nan
            check(close(num(rec["delta_" + col]), want), f"csv: {rec['run_id']} delta_{col} {rec['delta_' + col]} != {want}")
        for t in F.TASKS:
            check(close(num(rec[t]), 100 * r[f"acc_{t}"]), f"csv: {rec['run_id']} {t} {rec[t]} != 100*{r[f'acc_{t}']}")
        check(close(num(rec["mean"]), r["acc_mean"]), f"csv: {rec['run_id']} mean {rec['mean']} != {r['acc_mean']}")
        check(close(num(rec["ppl_c4"]), math.nan), f"csv: {rec['run_id']} ppl_c4 should be empty")
        check(close(num(rec["params_after"]), r["params_after"]), f"csv: {rec['run_id']} params_after")
        want_base = dense["run_id"] if r is not dense else ""
        check(rec["baseline"] == want_base, f"csv: {rec['run_id']} baseline {rec['baseline']!r} != {want_base!r}")
    rec = next(r for r in ours if r["run_id"] == taylor20["run_id"])
    check(close(num(rec["vs_paper_ppl_wikitext2"]), 17.66 - 20.21), f"csv: vs_paper wikitext2 {rec['vs_paper_ppl_wikitext2']}")
    check(close(num(rec["vs_paper_boolq"]), 100 * taylor20["acc_boolq"] - 75.78), "csv: vs_paper boolq")
    check(close(num(rec["vs_paper_mean"]), taylor20["acc_mean"] - 63.49), "csv: vs_paper mean (from avg:)")
    frec = next(r for r in ours if r["run_id"] == failed["run_id"])
    check(frec["status"] == "failed" and "out of memory" in frec["error"], f"csv: failed run: {frec}")
    prec = next(r for r in recs if r["source"] == "paper" and r["model"] == "LLaMA-7B")
    check(close(num(prec["params_after"]), 5.47e9) and close(num(prec["ratio"]), 0.2), f"csv: published LLaMA row {prec}")
    check(next(r for r in recs if r["method"] == "taylor+" and r["source"] == "paper")["note"] == "Shortened LLaMA 4.1",
          "csv: published note")

    # ---- --baseline ----------------------------------------------------------------------------
    for b in (taylor20["run_id"], taylor20["label"]):
        recs_b = parse_csv(ok(sweep, "--format", "csv", "--baseline", b))
        for rec in recs_b:
            if rec["source"] != "ours" or rec["status"] != "done":
                continue
            r = by_id[rec["run_id"]]
            want = r["ppl_wikitext2"] - taylor20["ppl_wikitext2"] if r is not taylor20 else math.nan
            check(close(num(rec["delta_ppl_wikitext2"]), want), f"--baseline {b}: {rec['run_id']} delta {rec['delta_ppl_wikitext2']} != {want}")
    md_b = ok(sweep, "--baseline", taylor20["run_id"])
    check("12.62 (-5.04)" in md_b, "md --baseline: dense shown relative to the baseline run")
    error_line(run(sweep, "--baseline", "nosuchrun"), 1, "nosuchrun", what="unknown --baseline")
    error_line(run(sweep, "--baseline", failed["run_id"]), 1, "failed", what="failed run as --baseline")

    # ---- LaTeX ---------------------------------------------------------------------------------
    tex = ok(sweep, "--format", "tex")
    for s in ("\\begin{tabular}{", "\\toprule", "\\midrule", "\\bottomrule", "\\end{tabular}", "WikiText-2$\\downarrow$",
              "17.66 {\\scriptsize (+5.04)}", "20.21 {\\scriptsize (ours -2.55)}", "param\\_first (channel)", "20\\%",
              "\\#Params", "\\multicolumn{"):
        check(s in tex, f"tex: {s!r} missing")
    lines = [l for l in tex.splitlines() if l.endswith("\\\\")]
    ncols = tex.split("\\begin{tabular}{")[1].split("}")[0]
    for l in lines:
        if "\\multicolumn" not in l:
            check(l.count(" & ") + 1 == len(ncols), f"tex: row has {l.count(' & ') + 1} cells for {len(ncols)} columns: {l}")
    check(tex.count("\\midrule") >= 2, "tex: no rule between model groups")

    # ---- variable-length strings, several models, several folders -----------------------------
    recs_v = parse_csv(ok(vlen, "--format", "csv"))
    small = [r for r in recs_v if r["model"] == "small"]
    check(len(small) == len(rows_v) // 2, f"vlen: {len(small)} rows of model small")
    sd = next(r for r in small if r["method"] == "dense")
    st = next(r for r in small if r["method"] == "taylor+" and r["ratio"] == "0.2")
    check(st["baseline"] == sd["run_id"] and close(num(st["delta_ppl_wikitext2"]), 5.04),
          f"vlen: small's deltas are to small's dense run: {st['baseline']} {st['delta_ppl_wikitext2']}")
    models = [r["model"] for r in recs_v]
    check(models == sorted(models, key=models.index) and set(models) == {"tiny", "small"},
          f"vlen: rows are not grouped by model: {models}")
    first_of = {m: models.index(m) for m in set(models)}
    for m, i in first_of.items():
        check(recs_v[i]["method"] == "dense", f"vlen: model {m} does not start with its dense run")
    both = parse_csv(ok(sweep, vlen, "--format", "csv"))
    check({r["experiment"] for r in both if r["source"] == "ours"} == {"sweep", "vlen"}, "two folders: experiment column")
    check("| experiment |" in ok(sweep, vlen), "two folders: md has an experiment column")

    # ---- amounts given as native settings and block counts (FLAP's p, Shortened LLaMA's blocks) ------
    amt = os.path.join(TMP, "amounts")
    os.makedirs(amt)
    base = {r["method"]: r for r in F.runs_for("LLaMA-7B")}
    arows = [dict(base["dense"])]
    for run_id, native, wt2 in (("fn02", 0.2, 14.80), ("fn03", 0.3, 17.00)):
        arows.append(dict(base["flap"], run_id=run_id, ratio=math.nan, native=native, ppl_wikitext2=wt2))
    arows.append(dict(base["taylor+"], run_id="tb06", ratio=math.nan, num_blocks=6, ppl_wikitext2=19.5))
    F.write_index(os.path.join(amt, "index.h5"), arows)
    with open(os.path.join(amt, "published.yaml"), "w") as f:   # the runner's re-emitted shape
        f.write("- model: LLaMA-7B\n  method: flap\n  native: 0.2\n  wikitext2: 14.62\n"
                "- model: LLaMA-7B\n  method: wanda-sp\n  native: 0.2\n  wikitext2: 22.12\n"
                "- model: LLaMA-7B\n  method: taylor+\n  num_blocks: 6\n  wikitext2: 20.21\n  note: \"after LoRA\"\n")
    body, _ = md_rows(ok(amt))
    names = [(r[1], r[3]) for r in body]
    i = names.index(("flap", "native 0.2"))
    check(names[i + 1] == ("flap (paper)", "native 0.2") and "14.62 (ours +0.18)" in body[i + 1],
          f"native: published row under the run with the same native setting: {body[i:i + 2]}")
    j = names.index(("taylor+", "6 blocks"))
    check(names[j + 1] == ("taylor+ (paper)", "6 blocks") and "20.21 (ours -0.71)" in body[j + 1],
          f"num_blocks: published row under the run with the same block count: {body[j:j + 2]}")
    check(names[-1] == ("wanda-sp (paper)", "native 0.2"), f"unmatched published row last in its model: {names}")
    check(("flap (paper)", "native 0.2") not in names[i + 2:], "a published row placed twice")

    # ---- empty index: a header, no rows ----------------------------------------------------------
    empty = os.path.join(TMP, "empty")
    os.makedirs(empty)
    F.write_index(os.path.join(empty, "index.h5"), [], "vlen")
    p = run(empty)
    check(p.returncode == 0 and p.stdout.startswith("| model |"), f"empty index: {p.returncode} {p.stderr}")

    # ---- bad input --------------------------------------------------------------------------------
    error_line(run(os.path.join(TMP, "nope")), 1, "nope", what="missing folder")
    noidx = os.path.join(TMP, "noindex")
    os.makedirs(noidx)
    error_line(run(noidx), 1, os.path.join(noidx, "index.h5"), what="missing index")
    corrupt = os.path.join(TMP, "corrupt")
    os.makedirs(corrupt)
    with open(os.path.join(corrupt, "index.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    error_line(run(corrupt), 1, os.path.join(corrupt, "index.h5"), what="corrupt index")
    trunc = os.path.join(TMP, "trunc")
    os.makedirs(trunc)
    data = open(os.path.join(sweep, "index.h5"), "rb").read()
    with open(os.path.join(trunc, "index.h5"), "wb") as f:
        f.write(data[: len(data) // 2])
    error_line(run(trunc), 1, os.path.join(trunc, "index.h5"), what="truncated index")
    nosum = os.path.join(TMP, "nosummary")
    os.makedirs(nosum)
    with h5py.File(os.path.join(nosum, "index.h5"), "w") as f:
        f["other"] = [1, 2, 3]
    error_line(run(nosum), 1, "summary", what="index without summary")
    notcomp = os.path.join(TMP, "notcompound")
    os.makedirs(notcomp)
    with h5py.File(os.path.join(notcomp, "index.h5"), "w") as f:
        f["summary"] = [1.0, 2.0]
    error_line(run(notcomp), 1, "compound", what="summary not compound")
    nomodel = os.path.join(TMP, "nomodel")
    os.makedirs(nomodel)
    arr = numpy.zeros(2, dtype=[("run_id", "S4"), ("method", "S4"), ("status", "S4"), ("ppl_wikitext2", "f8")])
    with h5py.File(os.path.join(nomodel, "index.h5"), "w") as f:
        f["summary"] = arr
    error_line(run(nomodel), 1, "'model'", what="summary without model column")
    badtype = os.path.join(TMP, "badtype")
    os.makedirs(badtype)
    arr = numpy.zeros(1, dtype=[("run_id", "S4"), ("model", "f8"), ("method", "S4"), ("status", "S4")])
    with h5py.File(os.path.join(badtype, "index.h5"), "w") as f:
        f["summary"] = arr
    error_line(run(badtype), 1, "'model'", what="numeric model column")
    for name, text, needles in (
            ("pub_key", "- {model: tiny, method: flap, ratio: 0.2, wikitex2: 14.6}\n", ["published.yaml:1:", "wikitex2"]),
            ("pub_num", "- model: tiny\n  method: flap\n  ratio: 0.2\n  boolq: high\n", ["published.yaml:4:10", "boolq"]),
            ("pub_ratio", "- {model: tiny, method: flap, ratio: 35}\n", ["published.yaml:1:", "ratio"]),
            ("pub_syntax", "- {model: tiny, method: [flap\n", ["published.yaml:"]),
            ("pub_nomodel", "- {method: flap, ratio: 0.2}\n", ["published.yaml:1:3", "'model'"]),
            ("pub_shape", "published: 3\n", ["published.yaml:1:12", "list"])):
        d = os.path.join(TMP, name)
        F.make_experiment(d, published=text, run_files=False)
        error_line(run(d), 1, *needles, what=name)
    # the experiment file's own shape (published: [...]) is accepted too
    d = os.path.join(TMP, "pub_map")
    F.make_experiment(d, published="published:\n" + "".join("  " + l + "\n" for l in F.PUBLISHED.splitlines()),
                      run_files=False)
    check("20.21 (ours -2.55)" in ok(d), "published: key form")
    error_line(run(sweep, "--format", "html"), 1, "html", what="bad --format")
    error_line(run(), 2, what="no folder")
    error_line(run(sweep, "--bogus"), 2, "--bogus", what="unknown option")

    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""plot.py — width-vs-depth figures from prunebench experiment folders.

Reads DIR/index.h5 (the compound `summary` table, one row per run; see core/exp/results.h)
with h5py into a pandas DataFrame and, for --kind importance, the run files DIR/<run_id>.h5.
Draws with matplotlib (Agg backend, no display needed). `prunebench plot` runs this script;
it also runs alone:

    python3 plots/plot.py results/quickstart --kind ppl-vs-ratio --out ppl.png

Kinds:
  ppl-vs-ratio      perplexity on --dataset (log scale) vs. % of parameters removed, one line
                    per method; depth methods solid, width methods dashed; dense at 0%.
  acc-vs-ratio      mean zero-shot accuracy (x100) vs. % of parameters removed.
  speed-vs-quality  perplexity vs. throughput (largest batch; latency when no throughput).
  importance        per-layer importance scores from the run files (normalised per run;
                    width scores are averaged over a layer's heads or channels).

Errors are one line on stderr and exit 1 (2 for a malformed command line).
"""
import argparse
import math
import os
import signal
import sys

KINDS = ("ppl-vs-ratio", "acc-vs-ratio", "speed-vs-quality", "importance")
DEPTH = {"block", "attn", "mlp", "module"}
WIDTH = {"head", "channel", "width"}   # "width": heads and channels together (prunebench run)
TASKS = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
PRETTY = {"wikitext2": "WikiText-2", "ptb": "PTB", "c4": "C4", "tinystories": "TinyStories"}
STYLE = {"depth": ("-", "o"), "width": ("--", "s"), "": (":", "^")}


class PlotError(Exception):
    """A problem with the input or the output: reported as one line, exit 1."""


def one_line(s):
    return " ".join(str(s).split())


def family(granularity):
    if granularity in DEPTH:
        return "depth"
    if granularity in WIDTH:
        return "width"
    return ""


def load_index(d):
    import h5py
    import numpy as np
    import pandas as pd

    path = os.path.join(d, "index.h5")
    if not os.path.isdir(d):
        raise PlotError(f"{d}: no such experiment folder")
    if not os.path.isfile(path):
        raise PlotError(f"{path}: no such file (run `prunebench index {d}` to build it)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise PlotError(f"{path}: not a readable HDF5 file ({one_line(e)})")
    with f:
        ds = f.get("summary")
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None or ds.ndim != 1:
            raise PlotError(f"{path}: no compound 'summary' table (not an experiment index)")
        try:
            arr = ds[()]
        except OSError as e:
            raise PlotError(f"{path}: cannot read 'summary' ({one_line(e)})")
    df = pd.DataFrame(arr)
    for col in df.columns:
        if df[col].dtype == object or df[col].dtype.kind == "S":
            df[col] = df[col].map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
    for col in ("model", "method", "status"):
        if col not in df.columns:
            raise PlotError(f"{path}: 'summary' has no column '{col}'")
    for col in ("run_id", "criterion", "granularity"):
        if col not in df.columns:
            df[col] = ""
    num = ["ratio", "params_before", "params_after", "acc_mean", "latency_ms", "throughput"] + [f"acc_{t}" for t in TASKS]
    for col in num:
        df[col] = df[col].astype(float) if col in df.columns else np.nan
    # accuracies are fractions in the index (the mean is x100); an accuracy of at most 1%
    # is not a result these tasks give, so a value above 1 is taken as percent already
    for col in ["acc_mean"] + [f"acc_{t}" for t in TASKS]:
        df[col] = df[col].where(~(df[col] <= 1.0), df[col] * 100)
    tasks = df[[f"acc_{t}" for t in TASKS]]
    df["acc_mean"] = df["acc_mean"].where(df["acc_mean"].notna(), tasks.mean(axis=1, skipna=True))
    df["experiment"] = os.path.basename(os.path.normpath(d))
    df["dir"] = d
    return df


def load(dirs):
    import pandas as pd

    frames = [load_index(d) for d in dirs]
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = df[df["status"] == "done"].copy()
    dense = df["method"].str.lower() == "dense"
    achieved = (1 - df["params_after"] / df["params_before"]) * 100
    # what the run really removed; the target ratio where the parameter counts are absent
    df["removed"] = achieved.where(achieved.notna(), df["ratio"] * 100)
    df.loc[dense, "removed"] = 0.0
    df["dense"] = dense
    df["family"] = df["granularity"].map(family)
    return df


def series(df):
    """(key, label, family, rows) for each method line; key = model, method, criterion, granularity."""
    runs = df[~df["dense"]]
    models = sorted(set(df["model"]))
    crit_per_method = runs.groupby("method")["criterion"].nunique().to_dict()
    out = []
    for key, rows in runs.groupby(["model", "method", "criterion", "granularity"], sort=True):
        model, method, crit, gran = key
        label = method
        if crit_per_method.get(method, 1) > 1 and crit:
            label += f" / {crit}"
        fam = family(gran)
        if fam:
            label += f" ({fam})"
        if len(models) > 1:
            label = f"{model}: {label}"
        out.append((key, label, fam, rows))
    # depth methods first in the legend, then width, then the rest
    order = {"depth": 0, "width": 1, "": 2}
    out.sort(key=lambda s: (order[s[2]], s[1]))
    return out


def title_of(args, what, df):
    if args.title:
        return args.title
    exps = ", ".join(sorted(set(df["experiment"])))
    return f"{what} \u2014 {exps}"


def need(df, col, dirs, what):
    if col not in df.columns or df[col].notna().sum() == 0:
        raise PlotError(f"{', '.join(dirs)}: no finished runs with {what} ({col})")


def draw_vs_ratio(ax, df, col, log):
    """One line per method through its mean at each removed fraction, starting from the dense point."""
    dense = df[df["dense"] & df[col].notna()]
    for i, (key, label, fam, rows) in enumerate(series(df)):
        rows = rows[rows[col].notna() & rows["removed"].notna()]
        if rows.empty:
            continue
        g = rows.groupby(rows["removed"].round(6))[col]
        x, y = list(g.mean().index), list(g.mean().values)
        lo, hi = g.min().values, g.max().values
        d = dense[dense["model"] == key[0]]
        if not d.empty:
            x, y = [0.0] + x, [float(d[col].mean())] + y
            lo, hi = [y[0]] + list(lo), [y[0]] + list(hi)
        ls, mk = STYLE[fam]
        color = f"C{i % 10}"
        ax.plot(x, y, ls, marker=mk, color=color, label=label, linewidth=1.8, markersize=6)
        if any(h > l for l, h in zip(lo, hi)):   # several seeds: their range
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
    for model, d in dense.groupby("model"):
        v = float(d[col].mean())
        ax.axhline(v, color="0.4", linestyle=":", linewidth=1)
        ax.plot([0], [v], "*", color="k", markersize=12, label=f"dense ({model})" if dense["model"].nunique() > 1 else "dense")
    if log:
        log_axis(ax, df[col])
    ax.set_xlabel("parameters removed (%)")
    ax.grid(True, which="both", alpha=0.3)


def log_axis(ax, values):
    """A log y axis labelled with plain numbers (12, 15, 20, 30 rather than 2x10^1): within a
    decade, evenly stepped values (a log axis has too few of its own there); wider, 1-2-5 per
    decade, and one label per decade beyond three."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    v = values[values > 0]
    decades = math.log10(v.max() / v.min()) if len(v) else 0
    ax.set_yscale("log")
    if decades < 1:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 3 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_ppl(ax, df, args):
    col = f"ppl_{args.dataset}"
    need(df, col, args.dirs, f"{args.dataset} perplexity")
    draw_vs_ratio(ax, df, col, log=True)
    name = PRETTY.get(args.dataset, args.dataset)
    ax.set_ylabel(f"{name} perplexity (log scale, lower is better)")
    ax.set_title(title_of(args, f"{name} perplexity vs. pruning ratio", df))


def plot_acc(ax, df, args):
    need(df, "acc_mean", args.dirs, "zero-shot accuracy")
    draw_vs_ratio(ax, df, "acc_mean", log=False)
    ax.set_ylabel("mean zero-shot accuracy (%, higher is better)")
    ax.set_title(title_of(args, "Mean zero-shot accuracy vs. pruning ratio", df))


def plot_speed(ax, df, args):
    col = f"ppl_{args.dataset}"
    need(df, col, args.dirs, f"{args.dataset} perplexity")
    if df["throughput"].notna().any():
        xcol, xlabel = "throughput", "throughput (tokens/s, largest batch; higher is better)"
    elif df["latency_ms"].notna().any():
        xcol, xlabel = "latency_ms", "decode latency (ms/token, batch 1; lower is better)"
    else:
        raise PlotError(f"{', '.join(args.dirs)}: no finished runs with throughput or latency_ms")
    ok = df[df[xcol].notna() & df[col].notna()]
    if ok.empty:
        raise PlotError(f"{', '.join(args.dirs)}: no finished runs with both {xcol} and {col}")
    for i, (key, label, fam, rows) in enumerate(series(ok)):
        rows = rows.sort_values("removed")
        ls, mk = STYLE[fam]
        ax.plot(rows[xcol], rows[col], ls, marker=mk, color=f"C{i % 10}", label=label, linewidth=1.5, markersize=7)
        for _, r in rows.iterrows():
            if not math.isnan(r["removed"]):
                ax.annotate(f"{r['removed']:.0f}%", (r[xcol], r[col]), textcoords="offset points", xytext=(5, 4),
                            fontsize=8, color=f"C{i % 10}")
    dense = ok[ok["dense"]]
    for model, d in dense.groupby("model"):
        ax.plot(d[xcol], d[col], "*", color="k", markersize=13,
                label=f"dense ({model})" if dense["model"].nunique() > 1 else "dense")
    name = PRETTY.get(args.dataset, args.dataset)
    log_axis(ax, ok[col])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{name} perplexity (log scale, lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title_of(args, f"Speed vs. quality ({name})", df))


def layer_scores(path):
    """Per-layer scores of a run file (NaN where a layer has none), or None without /importance."""
    import h5py
    import numpy as np

    # a damaged file can make HDF5 loop forever: SIGALRM (no handler) ends the process then
    signal.alarm(30)
    try:
        with h5py.File(path, "r") as f:
            obj = f.get("importance")
            if isinstance(obj, h5py.Group):
                obj = obj.get("scores")
            if not isinstance(obj, h5py.Dataset):
                return None
            s = np.asarray(obj[()], dtype=float)
    except OSError:
        return None
    finally:
        signal.alarm(0)
    if s.ndim == 0 or s.size == 0:
        return None
    if s.ndim > 1:
        # width kinds: one row per layer, padded with -1 / NaN
        s = s.reshape(s.shape[0], -1)
        s = np.where(s == -1, np.nan, s)
        with np.errstate(all="ignore"):
            s = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in s])
    return s


def plot_importance(ax, df, args):
    import numpy as np

    drawn = 0
    for i, (key, label, fam, rows) in enumerate(series(df)):
        for _, r in rows.iterrows():   # scores do not depend on the ratio: the first run that has them
            s = layer_scores(os.path.join(r["dir"], f"{r['run_id']}.h5"))
            if s is None or not np.isfinite(s).any():
                continue
            scale = np.nanmax(np.abs(s))
            s = s / scale if scale > 0 else s
            ls, mk = STYLE[fam]
            ax.plot(np.arange(len(s)), s, ls, marker=mk, color=f"C{i % 10}", label=label, linewidth=1.5)
            drawn += 1
            break
    if not drawn:
        raise PlotError(f"{', '.join(args.dirs)}: no finished run file has /importance scores")
    ax.set_xlabel("layer")
    ax.set_ylabel("importance (normalised to the run's largest)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.set_title(title_of(args, "Per-layer importance", df))


def make_figure(args):
    """The figure for args (dirs, kind, dataset, title), not yet saved. Raises PlotError."""
    import matplotlib.pyplot as plt

    df = load(args.dirs)
    if df.empty:
        raise PlotError(f"{', '.join(args.dirs)}: no finished runs")
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    try:
        {"ppl-vs-ratio": plot_ppl, "acc-vs-ratio": plot_acc, "speed-vs-quality": plot_speed,
         "importance": plot_importance}[args.kind](ax, df, args)
    except BaseException:
        plt.close(fig)
        raise
    ax.legend(fontsize=9, loc="best", framealpha=0.85)
    fig.tight_layout()
    return fig


def parse_args(argv):
    p = argparse.ArgumentParser(prog="plot.py", description="figures from prunebench experiment folders")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", default="wikitext2")
    p.add_argument("--title")
    p.add_argument("--prog", default="plot.py", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    try:
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in (".png", ".svg", ".pdf"):
            raise PlotError(f"{args.out}: the output must end in .png, .svg or .pdf")
        try:
            import h5py  # noqa: F401
            import matplotlib
            import pandas  # noqa: F401
        except ImportError as e:
            raise PlotError(f"plotting needs h5py, pandas and matplotlib in {sys.executable}: {e} "
                            "(Debian: apt-get install python3-h5py python3-pandas python3-matplotlib)")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = make_figure(args)
        # written whole under a temporary name, then renamed: never a half image at --out
        tmp = os.path.join(os.path.dirname(args.out) or ".", f".{os.path.basename(args.out)}.tmp{os.getpid()}")
        try:
            fig.savefig(tmp, format=ext[1:])
            os.replace(tmp, args.out)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise PlotError(f"{args.out}: cannot write ({one_line(e.strerror or e)})")
        finally:
            plt.close(fig)
    except PlotError as e:
        print(f"{args.prog}: error: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug, or an input this script did not foresee: still one line
        if os.environ.get("PRUNEBENCH_DEBUG"):
            raise
        print(f"{args.prog}: error: plot.py failed: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

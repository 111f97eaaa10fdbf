"""test_plot.py — `prunebench plot` (plots/plot.py through the C command) on the fixture folders.

Each kind writes a PNG that is a real PNG (signature, IHDR size) of a plausible size and an
SVG that parses as XML with an <svg> root; the figure carries what a reader needs (title, axis
labels, a legend entry per method, a log axis for perplexity: checked in the SVG text). Errors
(bad kind, no index, a metric no run has, an unwritable or unknown output) are one stderr line,
exit 1."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import h5py  # noqa: F401
    import matplotlib  # noqa: F401
    import pandas  # noqa: F401
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)
import fixtures as F  # noqa: E402

BIN = os.environ.get("PB_BIN", "build/prunebench")
TMP = os.path.join(os.environ.get("PB_TMP", tempfile.gettempdir()), "exp_plot")
# the interpreter running this test has matplotlib and h5py (checked above): plot with it
ENV = dict(os.environ, PRUNEBENCH_PYTHON=sys.executable)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def plot(*args):
    return subprocess.run([BIN, "plot", *args], capture_output=True, text=True, timeout=300, env=ENV)


def error_line(p, *needles, what=""):
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 1, f"{what}: exit {p.returncode}, expected 1 ({p.stderr.strip()})")
    check(len(lines) == 1 and lines[0].startswith("prunebench: error: "), f"{what}: not one error line: {p.stderr!r}")
    for n in needles:
        check(n in p.stderr, f"{what}: {n!r} not in {p.stderr!r}")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def svg_text(path):
    root = ET.parse(path).getroot()
    check(root.tag.endswith("svg"), f"{path}: root element {root.tag}")
    # matplotlib writes text as glyph paths, with the string in a comment-free <g id="text_..."> ...;
    # its svg.fonttype 'path' default keeps the characters in the element ids and <!-- --> comments
    return open(path, encoding="utf-8").read()


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    sweep, vlen = os.path.join(TMP, "sweep"), os.path.join(TMP, "vlen")
    F.make_experiment(sweep)
    F.make_experiment(vlen, strings="vlen", models=(("tiny", 0.0), ("small", 1.0)))

    kinds = ("ppl-vs-ratio", "acc-vs-ratio", "speed-vs-quality", "importance")
    for kind in kinds:
        for ext in ("png", "svg"):
            out = os.path.join(TMP, f"{kind}.{ext}")
            p = plot(sweep, "--kind", kind, "--out", out)
            check(p.returncode == 0, f"{kind} {ext}: exit {p.returncode}: {p.stderr}")
            check(os.path.isfile(out), f"{kind} {ext}: no file")
            if not os.path.isfile(out):
                continue
            size = os.path.getsize(out)
            # an 8x5.5 inch figure at 120 dpi with lines, markers and a legend is tens of kB; an
            # empty axes PNG is about 10 kB, so below 15 kB nothing much was drawn
            if ext == "png":
                dims = png_size(out)
                check(dims == (960, 660), f"{kind}: PNG header/size {dims}")
                check(size > 15_000, f"{kind}: PNG only {size} bytes")
            else:
                text = svg_text(out)
                check(size > 20_000, f"{kind}: SVG only {size} bytes")
                # matplotlib's SVG keeps each text's string in a comment before its glyphs
                for needle in {"ppl-vs-ratio": ["WikiText-2 perplexity", "parameters removed (%)", "taylor+ (depth)",
                                                "flap (width)", "dense", "sweep"],
                               "acc-vs-ratio": ["mean zero-shot accuracy", "wanda-sp (width)", "ppl (depth)"],
                               "speed-vs-quality": ["throughput (tokens/s", "perplexity (log scale", "35%"],
                               "importance": ["Per-layer importance", "layer", "taylor+ (depth)", "flap (width)"]}[kind]:
                    check(needle in text, f"{kind} svg: text {needle!r} missing")

    # the figures themselves, built in this process: scales, labels, one legend entry per method
    sys.path.insert(0, os.path.join(os.environ.get("PB_SRC", "."), "plots"))
    import matplotlib
    matplotlib.use("Agg")
    import plot as P
    for kind, yscale, n_lines in (("ppl-vs-ratio", "log", 5), ("acc-vs-ratio", "linear", 5),
                                  ("speed-vs-quality", "log", 4), ("importance", "linear", 4)):
        fig = P.make_figure(P.parse_args([sweep, "--kind", kind, "--out", "unused.png"]))
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        check(ax.get_yscale() == yscale, f"{kind}: y scale {ax.get_yscale()}, expected {yscale}")
        check(ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), f"{kind}: an axis label or the title is empty")
        # depth: ppl, taylor+; width: flap, wanda-sp (no speed numbers); dense (not in importance)
        check(len(labels) == n_lines, f"{kind}: legend {labels}, expected {n_lines} entries")
        if kind != "importance":
            check("dense" in labels, f"{kind}: no dense entry in {labels}")
        styles = {l.get_label(): l.get_linestyle() for l in ax.get_lines()}
        check(styles.get("taylor+ (depth)") == "-" and styles.get("flap (width)") == "--",
              f"{kind}: depth solid / width dashed: {styles}")
        if yscale == "log":
            ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
            check(len(ticks) >= 3 and all("10^" not in t for t in ticks), f"{kind}: log ticks {ticks}")
        if kind == "ppl-vs-ratio":
            line = next(l for l in ax.get_lines() if l.get_label() == "taylor+ (depth)")
            # x: dense at 0, then the achieved fractions 20 and 35 (params in the fixture are
            # int(P*(1-r)): within 1e-7 of the target); y: dense 12.62, then 17.66 and 33.21
            xs, ys = list(line.get_xdata()), list(line.get_ydata())
            check(len(xs) == 3 and all(abs(a - b) < 1e-5 for a, b in zip(xs, (0, 20, 35))), f"taylor+ x {xs}")
            check(all(abs(a - b) < 1e-9 for a, b in zip(ys, (12.62, 17.66, 33.21))), f"taylor+ y {ys}")
        matplotlib.pyplot.close(fig)

    # two folders, two models, PTB, a custom title
    out = os.path.join(TMP, "two.png")
    p = plot(sweep, vlen, "--kind", "ppl-vs-ratio", "--dataset", "ptb", "--title", "PTB sweep", "--out", out)
    check(p.returncode == 0 and png_size(out) is not None, f"two folders: {p.returncode} {p.stderr}")
    out = os.path.join(TMP, "two.svg")
    p = plot(sweep, vlen, "--kind", "acc-vs-ratio", "--out", out)
    check(p.returncode == 0 and "small: flap (width)" in svg_text(out), f"two models: labels carry the model: {p.stderr}")

    # ---- errors ------------------------------------------------------------------------------------
    error_line(plot(sweep, "--kind", "histogram", "--out", os.path.join(TMP, "x.png")), "histogram", what="bad kind")
    error_line(plot(os.path.join(TMP, "nope"), "--kind", "ppl-vs-ratio", "--out", os.path.join(TMP, "x.png")),
               "nope", what="missing folder")
    noidx = os.path.join(TMP, "noindex")
    os.makedirs(noidx)
    error_line(plot(noidx, "--kind", "ppl-vs-ratio", "--out", os.path.join(TMP, "x.png")), "index.h5", what="no index")
    corrupt = os.path.join(TMP, "corrupt")
    os.makedirs(corrupt)
    with open(os.path.join(corrupt, "index.h5"), "wb") as f:
        f.write(b"not hdf5" * 100)
    error_line(plot(corrupt, "--kind", "acc-vs-ratio", "--out", os.path.join(TMP, "x.png")), "index.h5", what="corrupt index")
    error_line(plot(sweep, "--kind", "ppl-vs-ratio", "--dataset", "c4", "--out", os.path.join(TMP, "x.png")),
               "ppl_c4", what="metric no run has")
    error_line(plot(sweep, "--kind", "ppl-vs-ratio", "--out", os.path.join(TMP, "no", "such", "dir", "x.png")),
               "x.png", what="unwritable output")
    error_line(plot(sweep, "--kind", "ppl-vs-ratio", "--out", os.path.join(TMP, "x.txt")), "x.txt", what="unknown extension")
    bare = os.path.join(TMP, "bare")
    F.make_experiment(bare, run_files=False)
    error_line(plot(bare, "--kind", "importance", "--out", os.path.join(TMP, "x.png")), "importance",
               what="importance without run files")
    check(not os.path.exists(os.path.join(TMP, "x.png")), "a failed plot left an image")
    p = plot(sweep, "--out", os.path.join(TMP, "x.png"))
    check(p.returncode == 2, f"missing --kind: exit {p.returncode}")
    p = subprocess.run([BIN, "plot", sweep, "--kind", "importance", "--out", os.path.join(TMP, "y.png")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PRUNEBENCH_PYTHON=os.path.join(TMP, "no-python")))
    error_line(p, "no-python", what="no interpreter")

    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

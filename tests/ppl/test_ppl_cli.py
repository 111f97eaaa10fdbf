"""test_ppl_cli.py — `prunebench ppl` end to end on the real stories260K model, and its errors.

1. stories260K (a pretrained TinyStories model) on TinyStories validation: its mean NLL
   must be that of a model that has learnt the text. Scored paragraph by paragraph with BOS
   it gets 1.36 nats/token (models/MANIFEST.tsv); the windowed protocol starts every 128-token
   window cold and crosses paragraph boundaries, which costs some (1.68 on the whole file),
   so [1.2, 2.0] holds a working model (below it, targets would be leaking into the input),
   while a broken tokenizer, forward or target shift gives 3+ (uniform over the 512-token
   vocabulary is 6.24). The GGUF and the llama2.c copy of the same weights must agree to
   1e-5 (identical fp32 weights; only summation order may differ), and PRUNEBENCH_DATA must
   work in place of --data-dir.
2. Bad input: exit 1 and exactly one stderr line "prunebench: error: ..." naming the file
   (and line) at fault; usage errors exit 2."""
import json
import os
import subprocess
import sys

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "ppl_cli")
DATA = os.path.join(SHARED, "data")
STORIES = os.path.join(SHARED, "models", "stories260K")
GGUF = os.path.join(STORIES, "stories260K.gguf")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def ppl(*args, env=None):
    e = dict(os.environ)
    e.pop("PRUNEBENCH_DATA", None)
    e.update(env or {})
    return subprocess.run([BIN, "ppl", *args], capture_output=True, text=True, env=e, timeout=600)


def expect_error(name, args, *parts, code=1, env=None):
    p = ppl(*args, env=env)
    lines = p.stderr.strip().splitlines()
    if code == 1:
        ok = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("prunebench: error: ")
              and all(s in lines[0] for s in parts) and p.stdout == "")
    else:
        ok = p.returncode == 2 and len(lines) == 1 and all(s in lines[0] for s in parts)
    check(ok, f"{name}: exit {p.returncode}: {p.stderr.strip()!r}")


def main():
    if not os.path.isfile(GGUF) or not os.path.isdir(DATA):
        print(f"SKIP: {GGUF} or {DATA} absent", file=sys.stderr)
        return 77
    os.makedirs(TMP, exist_ok=True)

    # 1. the real model
    p = ppl(GGUF, "--dataset", "tinystories", "--max-windows", "300", "--json", "--threads", "1",
            env={"PRUNEBENCH_DATA": DATA})
    r = json.loads(p.stdout) if p.returncode == 0 else None
    check(r is not None and {"dataset", "split", "seq_len", "windows", "tokens", "ppl", "nll_mean",
                             "nll_stderr"} <= set(r), f"stories260K json: {p.stdout.strip()} {p.stderr.strip()}")
    if r:
        check(r["dataset"] == "tinystories" and r["split"] == "valid" and r["seq_len"] == 128 and r["windows"] == 300
              and r["tokens"] == 300 * 127, f"stories260K counts: {r}")
        check(1.2 <= r["nll_mean"] <= 2.0 and 0 < r["nll_stderr"] < 0.02,
              f"stories260K TinyStories nll_mean {r['nll_mean']:.4f} (ppl {r['ppl']:.3f}) stderr {r['nll_stderr']:.4f}")
        p2 = ppl(os.path.join(STORIES, "stories260K.bin"), "--tokenizer", os.path.join(STORIES, "tok512.bin"),
                 "--dataset", "tinystories", "--max-windows", "300", "--json", "--threads", "1", "--data-dir", DATA)
        r2 = json.loads(p2.stdout) if p2.returncode == 0 else None
        check(r2 is not None and r2["tokens"] == r["tokens"] and abs(r2["ppl"] - r["ppl"]) <= 1e-5 * r["ppl"],
              f"llama2.c copy agrees: {r2 and r2['ppl']} vs {r['ppl']} {p2.stderr.strip()}")
    p = ppl(GGUF, "--dataset", "ptb", "--max-windows", "3", "--data-dir", DATA, "--threads", "1")
    check(p.returncode == 0 and "dataset     ptb (valid)" in p.stdout and "\nppl " in p.stdout, f"text output: {p.stdout}")

    # 2. bad input: exit 1, one line
    empty, blank, short = (os.path.join(TMP, n) for n in ("empty.txt", "blank.jsonl", "short.txt"))
    open(empty, "w").close()
    with open(blank, "w") as f:
        f.write("\n  \n")
    with open(short, "w") as f:
        f.write("Once upon a time.")
    bad_json, no_text = os.path.join(TMP, "bad.jsonl"), os.path.join(TMP, "notext.jsonl")
    with open(bad_json, "w") as f:
        f.write('{"text": "one"}\n\n{"text": "three" oops}\n')
    with open(no_text, "w") as f:
        f.write('{"text": "one"}\n{"body": "two"}\n')
    D = ["--data-dir", DATA]
    expect_error("unknown dataset", [GGUF, "--dataset", "wikitext3", *D],
                 "unknown dataset 'wikitext3'; known text corpora: wikitext2, ptb, tinystories, c4")
    expect_error("task set as corpus", [GGUF, "--dataset", "boolq", *D], "'boolq' is a task set")
    expect_error("unknown split", [GGUF, "--dataset", "wikitext2", "--split", "train", *D],
                 "wikitext2: unknown split 'train'; its splits: test, valid")
    expect_error("seq-len over the context", [GGUF, "--dataset", "wikitext2", "--seq-len", "4096", *D],
                 "stories260K.gguf: --seq-len 4096 is longer than the model's context of 2048 tokens")
    expect_error("seq-len + BOS over the context", [GGUF, "--dataset", "wikitext2", "--seq-len", "2048",
                                                    "--bos-per-window", *D], "(+1 BOS per window)")
    expect_error("empty file", [GGUF, "--dataset", empty], f"{empty}: empty dataset")
    expect_error("blank jsonl", [GGUF, "--dataset", blank], f"{blank}: empty dataset")
    expect_error("text shorter than a window", [GGUF, "--dataset", short], f"{short}: the text has",
                 "fewer than one window of 128")
    expect_error("jsonl line not JSON", [GGUF, "--dataset", bad_json], f"{bad_json}:3:", "not valid JSON")
    expect_error("jsonl line without text", [GGUF, "--dataset", no_text], f"{no_text}:2: no string field \"text\"")
    expect_error("no such file", [GGUF, "--dataset", os.path.join(TMP, "nope.txt")], "nope.txt: no such file")
    expect_error("--split with a file", [GGUF, "--dataset", short, "--split", "test"], "--split applies to registered")
    expect_error("bad model", [os.path.join(TMP, "nomodel.gguf"), "--dataset", short], "nomodel.gguf")
    # data folder problems
    nodata = os.path.join(TMP, "nodata")
    os.makedirs(nodata, exist_ok=True)
    expect_error("c4 not bundled", [GGUF, "--dataset", "c4", "--data-dir", nodata],
                 "c4/c4-validation.00000-of-00008.json: missing", "allenai/c4", "run datasets/fetch c4")
    expect_error("registered file missing", [GGUF, "--dataset", "wikitext2", "--data-dir", nodata],
                 f"{nodata}/wikitext2/wiki.test.raw: missing; expected 1290590 bytes (sha256 173c87a5...)",
                 "datasets/fetch wikitext2")
    os.makedirs(os.path.join(nodata, "ptb"), exist_ok=True)
    with open(os.path.join(nodata, "ptb", "ptb.valid.txt"), "w") as f:
        f.write(" a b c\n")
    expect_error("registered file of the wrong size", [GGUF, "--dataset", "ptb", "--data-dir", nodata],
                 "ptb.valid.txt: 7 bytes, but the registry expected 399782 bytes")
    expect_error("--data-dir not a folder", [GGUF, "--dataset", "ptb", "--data-dir", empty], "not a directory")
    expect_error("PRUNEBENCH_DATA not a folder", [GGUF, "--dataset", "ptb"], "PRUNEBENCH_DATA=", "not a directory",
                 env={"PRUNEBENCH_DATA": empty})
    # usage errors: exit 2
    expect_error("no --dataset", [GGUF], "--dataset is required", code=2)
    expect_error("--stride 0", [GGUF, "--dataset", "ptb", "--stride", "0"], "--stride", code=2)
    expect_error("--stride over seq-len", [GGUF, "--dataset", "ptb", "--stride", "200"], "--stride", code=2)
    expect_error("--seq-len 1", [GGUF, "--dataset", "ptb", "--seq-len", "1"], "--seq-len", code=2)
    expect_error("--max-windows 0", [GGUF, "--dataset", "ptb", "--max-windows", "0"], "--max-windows", code=2)
    expect_error("bos + sliding", [GGUF, "--dataset", "ptb", "--stride", "64", "--bos-per-window"], "--bos-per-window",
                 code=2)

    print(f"ppl_cli: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""test_cli_errors.py — `prunebench zeroshot` on bad input: exit 1 with exactly one stderr
line "prunebench: error: ..." naming the file and line where there is one (unknown task,
labels file of the wrong length, a jsonl line that is not JSON or lacks a field, an empty
dataset, a corrupt registered file, a tokenizer that does not fit the model); exit 2 for
usage errors; --docs/--labels reading a task from explicit files. Uses stories260K (skips
without ../shared)."""
import json
import os
import shutil
import subprocess
import sys

BIN = os.environ.get("PB_BIN", "build/prunebench")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "zeroshot_cli_errors")
DATA = os.path.join(SHARED, "data")
MODEL = os.path.join(SHARED, "models", "stories260K", "stories260K.gguf")
KNOWN = "boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def zs(*args):
    return subprocess.run([BIN, "zeroshot", MODEL, "--threads", "1", *args], capture_output=True, text=True,
                          timeout=300)


def expect_error(what, args, *needles, code=1):
    p = zs(*args)
    lines = p.stderr.splitlines()
    check(p.returncode == code, f"{what}: exit {p.returncode}, expected {code} (stderr: {p.stderr!r})")
    if code == 1:
        check(len(lines) == 1 and lines[0].startswith("prunebench: error: "),
              f"{what}: stderr is not one 'prunebench: error:' line: {p.stderr!r}")
    for n in needles:
        check(n in p.stderr, f"{what}: stderr lacks {n!r}: {p.stderr!r}")
    check(p.stdout == "", f"{what}: something on stdout: {p.stdout!r}")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def main():
    for p in (BIN, MODEL, DATA):
        if not os.path.exists(p):
            print(f"SKIP: {p} not found", file=sys.stderr)
            return 77
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    piqa = '{"goal": "g", "sol1": "a b", "sol2": "c"}\n'
    boolq = json.dumps({"question": "is it", "title": "T", "answer": True, "passage": "P."}) + "\n"

    expect_error("unknown task", ["--tasks", "boolq,nosuch"], "unknown task 'nosuch'", KNOWN)
    expect_error("task twice", ["--tasks", "piqa,piqa"], "listed twice")
    docs = write("piqa3.jsonl", piqa * 3)
    expect_error("labels too short", ["--tasks", "piqa", "--docs", docs, "--labels", write("two.lst", "0\n1\n")],
                 "two.lst: has 2 labels, fewer than the documents of", "(line 3 has none)")
    expect_error("labels too long", ["--tasks", "piqa", "--docs", docs, "--labels", write("four.lst", "0\n1\n0\n1\n")],
                 "four.lst: has 4 labels for the 3 documents")
    expect_error("labels missing", ["--tasks", "piqa", "--docs", docs], "needs a labels file")
    expect_error("labels not wanted", ["--tasks", "boolq", "--docs", write("b.jsonl", boolq), "--labels",
                                       write("one.lst", "1\n")], "one.lst: task boolq takes no labels file")
    bad = write("bad.jsonl", boolq + '{"question": "q", "title": "t", "answer": tru}\n')
    expect_error("not JSON", ["--tasks", "boolq", "--docs", bad], "bad.jsonl:2:", "not valid JSON")
    bad = write("nofield.jsonl", boolq * 2 + '{"question": "q", "title": "t", "answer": true}\n')
    expect_error("missing field", ["--tasks", "boolq", "--docs", bad], "nofield.jsonl:3: missing field \"passage\"")
    bad = write("nolabel.jsonl", piqa + '{"goal": "g", "sol2": "c"}\n')
    expect_error("missing field (piqa)", ["--tasks", "piqa", "--docs", bad, "--labels", write("l2.lst", "0\n1\n")],
                 "nolabel.jsonl:2: missing field \"sol1\"")
    expect_error("bad label", ["--tasks", "piqa", "--docs", docs, "--labels", write("l3.lst", "0\nx\n1\n")],
                 "l3.lst:2: label \"x\" is not 0 or 1")
    expect_error("empty dataset", ["--tasks", "boolq", "--docs", write("empty.jsonl", "")], "empty.jsonl: no documents")
    expect_error("blank dataset", ["--tasks", "hellaswag", "--docs", write("blank.jsonl", "\n\n")],
                 "blank.jsonl: no documents")
    expect_error("missing docs file", ["--tasks", "boolq", "--docs", os.path.join(TMP, "nope.jsonl")], "nope.jsonl")
    # a registered file that is cut short: the registry check names it
    ddir = os.path.join(TMP, "data")
    os.makedirs(os.path.join(ddir, "openbookqa"))
    with open(os.path.join(DATA, "openbookqa", "test.jsonl"), encoding="utf-8") as f:
        write(os.path.join("data", "openbookqa", "test.jsonl"), f.read()[:1000])
    expect_error("corrupt registered file", ["--tasks", "openbookqa", "--data-dir", ddir], "openbookqa/test.jsonl")
    # the LLaMA tokenizer's ids do not fit stories260K's 512-piece vocabulary
    expect_error("tokenizer of another model", ["--tasks", "piqa", "--limit", "2", "--data-dir", DATA,
                                                "--tokenizer", os.path.join(DATA, "tokenizer", "tokenizer.model")],
                 "outside the model's vocabulary")
    expect_error("unwritable samples", ["--tasks", "openbookqa", "--limit", "1", "--data-dir", DATA, "--samples",
                                        os.path.join(TMP, "no", "such", "dir.jsonl")], "samples file")
    # usage errors: exit 2
    expect_error("bad --encode", ["--encode", "both"], "--encode", code=2)
    expect_error("bad --limit", ["--limit", "0"], "--limit", code=2)
    expect_error("bad --batch", ["--batch", "0"], "--batch", code=2)
    expect_error("--labels alone", ["--labels", "x.lst"], "--labels needs --docs", code=2)
    expect_error("--docs with two tasks", ["--tasks", "boolq,piqa", "--docs", docs], "exactly one", code=2)

    # explicit files work, and agree with the registry files on the same documents
    p = zs("--tasks", "piqa", "--docs", docs, "--labels", write("ok.lst", "0\n1\n1\n"), "--json")
    check(p.returncode == 0, f"--docs/--labels run failed: {p.stderr}")
    if p.returncode == 0:
        t = json.loads(p.stdout)["tasks"][0]
        check(t["task"] == "piqa" and t["n"] == 3, f"--docs run: {t}")
        # the three documents are identical: same prediction, so acc is 1/3 or 2/3
        check(abs(t["acc"] - 1 / 3) < 1e-12 or abs(t["acc"] - 2 / 3) < 1e-12, f"--docs run: acc {t['acc']}")
    print(f"zeroshot_cli_errors: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

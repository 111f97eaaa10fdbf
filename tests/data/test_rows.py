"""test_rows.py — the C row readers against Python's own semantics, byte for byte.

The HF dataset scripts read text files in Python text mode (universal newlines) and test
rows with str.strip(); this test builds the same rows with Python itself and compares:
  - pb_py_isspace against str.isspace over every code point;
  - synthetic files full of edge cases (CRLF, lone CR, Unicode spaces such as U+3000, U+00A0,
    U+2028 and U+0085 that strip() removes but that do not end a line, zero-width space that
    is not whitespace, a last line without newline) in every format;
  - the real WikiText-2 / PTB / TinyStories files, and the joined texts of wikitext2, ptb
    (both "\\n\\n") and a synthetic C4 folder (" ".join of the first 1100 documents);
  - JSONL errors: the message names FILE:LINE.

usage: test_rows.py ROWS_DUMP"""
import json
import os
import subprocess
import sys

SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "data_rows")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def dump_rows(exe, fmt, path, *extra):
    r = subprocess.run([exe, "rows", fmt, path, *extra], capture_output=True)
    if r.returncode != 0:
        return None, r.stderr.decode().strip()
    out, rows = r.stdout, []
    nl = out.index(b"\n")
    n, pos = int(out[:nl]), nl + 1
    for _ in range(n):
        nl = out.index(b"\n", pos)
        k = int(out[pos:nl])
        rows.append(out[nl + 1:nl + 1 + k].decode("utf-8"))
        pos = nl + 1 + k + 1
    check(pos == len(out), f"{fmt} {path}: trailing output")
    return rows, None


def py_rows(fmt, path, field="text", max_rows=0):
    """The reference: Python text mode and str.strip(), as the HF scripts use them."""
    if fmt == "plain":
        rows = [open(path, "rb").read().decode("utf-8")]
        rows = rows if rows[0] else []
    elif fmt == "wikitext":
        rows = [line if line.strip() else "" for line in open(path, encoding="utf-8")]
    elif fmt == "lines":
        rows = [line.strip() for line in open(path, encoding="utf-8")]
    elif fmt == "paragraphs":
        rows, cur = [], []
        for line in open(path, encoding="utf-8"):
            if line.strip():
                cur.append(line[:-1] if line.endswith("\n") else line)
            elif cur:
                rows.append("\n".join(cur).strip())
                cur = []
        if cur:
            rows.append("\n".join(cur).strip())
    elif fmt == "jsonl":
        rows = [json.loads(line)[field] for line in open(path, encoding="utf-8") if line.strip()]
    return rows[:max_rows] if max_rows else rows


EDGE = ("first line\n"
        "   \n"                       # blank: wikitext "" ; lines ""
        "\u3000\u00a0\t\n"            # Unicode whitespace only: blank for Python
        "  indented and trailing  \r\n"
        "lone CR ends a line\rnext after CR\n"
        "sep\u2028inside stays one line\n"   # U+2028 is whitespace but not a line end in file iteration
        "\u0085nel at start\n"
        "\u200b\n"                    # zero-width space: NOT whitespace, so this line is not blank
        "\n\n\n"
        "caf\u00e9 \u00fcber \U0001F600 \u3000\n"
        "\x1c\x1d\n"
        "\n"
        "last line without newline \u2003")


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    exe = args[0]
    os.makedirs(TMP, exist_ok=True)

    # 1. isspace table
    r = subprocess.run([exe, "isspace"], capture_output=True, text=True, check=True)
    ours = [int(x, 16) for x in r.stdout.split()]
    ref = [c for c in range(0x110000) if chr(c).isspace()]
    check(ours == ref, f"pb_py_isspace differs from str.isspace: {sorted(set(ours) ^ set(ref))[:10]}")

    # 2. synthetic edge cases, every format
    edge = os.path.join(TMP, "edge.txt")
    with open(edge, "w", encoding="utf-8", newline="") as f:
        f.write(EDGE)
    for fmt in ("plain", "wikitext", "lines", "paragraphs"):
        got, err = dump_rows(exe, fmt, edge)
        want = py_rows(fmt, edge)
        check(got == want, f"edge file, {fmt}: {err or ''}\n ours {got!r}\n  ref {want!r}")
    got, _ = dump_rows(exe, "lines", edge, "text", "3")
    check(got == py_rows("lines", edge)[:3], "max rows")
    empty = os.path.join(TMP, "empty.txt")
    open(empty, "w").close()
    for fmt in ("plain", "wikitext", "lines", "paragraphs", "jsonl"):
        got, err = dump_rows(exe, fmt, empty)
        check(got == [], f"empty file, {fmt}: {got!r} {err}")

    # 3. JSONL: valid lines with escapes, blank lines, CRLF
    jl = os.path.join(TMP, "docs.jsonl")
    docs = [{"text": "plain"}, {"text": "caf\u00e9 \U0001F600 \"quoted\"\n\tline2", "id": 1},
            {"meta": {"text": "nested"}, "text": "  spaces kept  "}, {"text": ""}]
    with open(jl, "w", encoding="utf-8", newline="") as f:
        f.write(json.dumps(docs[0]) + "\n\n" + json.dumps(docs[1], ensure_ascii=True) + "\r\n   \n"
                + json.dumps(docs[2], ensure_ascii=False) + "\n" + json.dumps(docs[3]))
    got, err = dump_rows(exe, "jsonl", jl)
    check(got == py_rows("jsonl", jl), f"jsonl: {err} {got!r}")
    got, err = dump_rows(exe, "jsonl", jl, "meta")
    check(got is None and err == f"{jl}:1: no string field \"meta\"", f"jsonl missing field: {err}")

    bad_cases = [
        ('{"text": "a"}\n{"text": "b"\n', ":2:", "not valid JSON"),
        ('{"text": "a"}\n{"txt": "b"}\n', ":2:", 'no string field "text"'),
        ('{"text": 5}\n', ":1:", 'no string field "text"'),
        ('\n\n["text"]\n', ":3:", "not a JSON object"),
        ('{"text": "a"} trailing\n', ":1:15:", "text after the JSON value"),
        ('not json at all\n', ":1:", "not valid JSON"),
    ]
    for i, (content, where, what) in enumerate(bad_cases):
        p = os.path.join(TMP, f"bad{i}.jsonl")
        with open(p, "w") as f:
            f.write(content)
        got, err = dump_rows(exe, "jsonl", p)
        check(got is None and err.startswith(p + where) and what in err and "\n" not in err,
              f"bad jsonl {i}: {err!r}")

    data = os.path.join(SHARED, "data")
    if not os.path.isdir(data):
        print(f"SKIP (partly): {data} absent; real-file checks not run", file=sys.stderr)
    else:
        # 4. the real files, row for row
        for fmt, rel in (("wikitext", "wikitext2/wiki.test.raw"), ("wikitext", "wikitext2/wiki.valid.raw"),
                         ("lines", "ptb/ptb.valid.txt"), ("lines", "ptb/ptb.test.txt"), ("lines", "ptb/ptb.train.txt"),
                         ("paragraphs", "tinystories/tinystories_val.txt")):
            path = os.path.join(data, rel)
            got, err = dump_rows(exe, fmt, path)
            want = py_rows(fmt, path)
            check(got == want, f"{rel} ({fmt}): {err or ''} {len(got or [])} vs {len(want)} rows")
        # 5. joined texts, as the perplexity protocol builds them
        for name, split, rel, fmt, sep in (("wikitext2", "-", "wikitext2/wiki.test.raw", "wikitext", "\n\n"),
                                           ("ptb", "validation", "ptb/ptb.valid.txt", "lines", "\n\n"),
                                           ("ptb", "test", "ptb/ptb.test.txt", "lines", " ")):
            cmd = [exe, "text", name, data, split] + ([sep] if sep != "\n\n" else [])
            r = subprocess.run(cmd, capture_output=True)
            want = sep.join(py_rows(fmt, os.path.join(data, rel))).encode()
            check(r.returncode == 0 and r.stdout == want, f"joined text {name} {split}: {r.stderr.decode()}")

    # 6. C4 layout: " ".join of the first 1100 documents of the validation shard
    c4dir = os.path.join(TMP, "c4data")
    os.makedirs(os.path.join(c4dir, "c4"), exist_ok=True)
    c4docs = [{"text": f"Document {i}.\nSecond line {i} \u00e9", "timestamp": "2019", "url": f"u{i}"} for i in range(1203)]
    with open(os.path.join(c4dir, "c4", "c4-validation.00000-of-00008.json"), "w", encoding="utf-8") as f:
        for d in c4docs:
            f.write(json.dumps(d) + "\n")
    r = subprocess.run([exe, "text", "c4", c4dir], capture_output=True)
    want = " ".join(d["text"] for d in c4docs[:1100]).encode()
    check(r.returncode == 0 and r.stdout == want, f"c4 text: {r.stderr.decode()}")

    # 7. files given by path: plain keeps bytes; .jsonl reads "text"; empty ones are errors
    r = subprocess.run([exe, "text", jl, "/nonexistent"], capture_output=True)
    check(r.returncode == 0 and r.stdout == "\n\n".join(py_rows("jsonl", jl)).encode(), "jsonl file text")
    r = subprocess.run([exe, "text", edge, "/nonexistent", "-", " | "], capture_output=True)
    check(r.returncode == 0 and r.stdout == EDGE.encode(), "plain file text is the file's bytes")
    for p in (empty, os.path.join(TMP, "blank.jsonl")):
        with open(p, "w") as f:
            f.write("\n \n" if p.endswith("jsonl") else "")
        r = subprocess.run([exe, "text", p, "/nonexistent"], capture_output=True, text=True)
        check(r.returncode == 1 and r.stderr.startswith(p + ": empty dataset"), f"empty {p}: {r.stderr!r}")
    r = subprocess.run([exe, "text", "wikitext3", "/nonexistent"], capture_output=True, text=True)
    check(r.returncode == 1 and "unknown dataset 'wikitext3'; known text corpora: wikitext2, ptb, tinystories, c4"
          in r.stderr, f"unknown: {r.stderr!r}")
    r = subprocess.run([exe, "text", "boolq", "/nonexistent"], capture_output=True, text=True)
    check(r.returncode == 1 and "'boolq' is a task set, not a text corpus" in r.stderr, f"task as text: {r.stderr!r}")

    print(f"data_rows: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

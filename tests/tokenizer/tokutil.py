"""tokutil.py — helpers shared by the tokenizer test scripts: skipping, running the
tok_encode driver on records, and reporting mismatches."""
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def shared_or_skip(*rel):
    shared = os.environ.get("PB_SHARED", "")
    paths = [os.path.join(shared, r) for r in rel]
    for p in paths:
        if not os.path.exists(p):
            skip("%s not found (set PB_SHARED)" % p)
    return paths


def tmpdir():
    d = os.environ.get("PB_TMP") or tempfile.gettempdir()
    os.makedirs(d, exist_ok=True)
    return d


def _as_bytes(t):
    return t if isinstance(t, bytes) else t.encode("utf-8")


def write_records(path, texts):
    with open(path, "wb") as f:
        for t in texts:
            b = _as_bytes(t)
            f.write(struct.pack("<I", len(b)) + b)


def run(helper, args, stdin_file=None):
    r = subprocess.run([helper] + args, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode("utf-8", "replace"))
        raise SystemExit("tok_encode %s failed (exit %d)" % (" ".join(args), r.returncode))
    return r.stdout, r.stderr.decode("utf-8", "replace")


def encode_records(helper, tok_args, texts, name, bos=False):
    """Our ids for each text (list of lists)."""
    path = os.path.join(tmpdir(), name + ".records")
    write_records(path, texts)
    out, _ = run(helper, (["--bos"] if bos else []) + tok_args + ["records", path])
    lines = out.decode().split("\n")[:-1]
    assert len(lines) == len(texts), "got %d id lines for %d records" % (len(lines), len(texts))
    return [[int(x) for x in l.split()] for l in lines]


def decode_records(helper, tok_args, id_lists, name):
    """Our token-by-token decoding of each id list (list of bytes)."""
    path = os.path.join(tmpdir(), name + ".ids")
    with open(path, "w") as f:
        for ids in id_lists:
            f.write(" ".join(map(str, ids)) + "\n")
    out, _ = run(helper, tok_args + ["decode", path])
    res, p = [], 0
    while p < len(out):
        (n,) = struct.unpack("<I", out[p:p + 4])
        res.append(out[p + 4:p + 4 + n])
        p += 4 + n
    assert len(res) == len(id_lists)
    return res


class Checker:
    """Counts mismatches, shows the first few, and sets the exit code."""

    def __init__(self, name):
        self.name, self.fail, self.checks = name, 0, 0

    def same(self, what, ours, ref, text=None):
        self.checks += 1
        if ours == ref:
            return True
        self.fail += 1
        if self.fail <= 8:
            print("MISMATCH %s: text=%r\n  ours=%s\n  ref =%s" % (what, text, ours, ref))
        return False

    def ok(self, what, cond, detail=""):
        self.checks += 1
        if not cond:
            self.fail += 1
            print("FAIL %s %s" % (what, detail))
        return cond

    def done(self):
        print("%s: %d checks, %d failed" % (self.name, self.checks, self.fail))
        sys.exit(1 if self.fail or not self.checks else 0)

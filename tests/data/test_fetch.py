"""test_fetch.py — datasets/fetch without internet: file:// URLs and the --from copy mode.

A scratch registry (same schema as datasets/registry.json) points at local files through
file:// URLs, so the download path itself (urllib, gunzip, size + sha256 check, atomic
rename) runs. Checked: good files land and verify; a second run leaves them alone; a
corrupted local copy is fetched again; a checksum mismatch or a broken URL leaves nothing
behind and exits 1; an entry without URL says where to get it; an unrecorded sha256 is
printed; argument errors exit 2 and list the known names. Then the real registry with
--from ../shared/data: every bundled file copies and verifies, and C4 (not bundled) fails."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

SRC = os.environ.get("PB_SRC", ".")
SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "data_fetch")
FETCH = os.path.join(SRC, "datasets", "fetch")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def fetch(*args, env=None):
    e = dict(os.environ)
    e.pop("PRUNEBENCH_DATA", None)
    e.update(env or {})
    return subprocess.run([sys.executable, FETCH, *args], capture_output=True, text=True, env=e, timeout=300)


def entry(path, content, url=None, gunzip=False, sha=True):
    return {"path": path, "sha256": hashlib.sha256(content).hexdigest() if sha else None,
            "bytes": len(content) if sha else None, "source": "test@0:" + path, "url": url, "gunzip": gunzip}


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    src, data = os.path.join(TMP, "src"), os.path.join(TMP, "data")
    os.makedirs(src)
    a, b, c, u = b"alpha\n" * 100, "b\u00e9ta\n".encode() * 300, b"gamma\n" * 50, b"unknown sha\n"
    for name, content in (("a.txt", a), ("c.txt", c), ("u.txt", u)):
        with open(os.path.join(src, name), "wb") as f:
            f.write(content)
    with gzip.open(os.path.join(src, "b.txt.gz"), "wb") as f:
        f.write(b)
    url = "file://" + os.path.abspath(src) + "/"
    wrong_c = entry("bad/c.txt", c, url + "c.txt")
    wrong_c["sha256"] = hashlib.sha256(b"x" + c[1:]).hexdigest()   # same size, other content
    reg = {"datasets": [
        {"name": "alpha", "splits": {"test": [entry("alpha/a.txt", a, url + "a.txt")]}},
        {"name": "beta", "splits": {"train": [entry("beta/b.txt", b, url + "b.txt.gz", gunzip=True)]}},
        {"name": "bad", "splits": {"test": [wrong_c]}},
        {"name": "nourl", "splits": {"test": [entry("nourl/n.txt", b"n")]}},
        {"name": "broken", "splits": {"test": [entry("broken/x.txt", b"x", url + "does-not-exist.txt")]}},
        {"name": "unknownsha", "splits": {"validation": [entry("u/u.txt", u, url + "u.txt", sha=False)]}},
    ]}
    regp = os.path.join(TMP, "registry.json")
    with open(regp, "w") as f:
        json.dump(reg, f)
    R = ["--registry", regp, "--data-dir", data]

    r = fetch(*R, "alpha", "beta")
    check(r.returncode == 0, f"alpha beta: {r.returncode} {r.stderr}")
    check(open(os.path.join(data, "alpha/a.txt"), "rb").read() == a, "alpha content")
    check(open(os.path.join(data, "beta/b.txt"), "rb").read() == b, "beta gunzipped content")
    check(r.stdout.count("(sha256 verified)") == 2, f"verified lines: {r.stdout}")

    r = fetch(*R, "alpha")
    check(r.returncode == 0 and "already present" in r.stdout, f"second run: {r.stdout}")

    with open(os.path.join(data, "alpha/a.txt"), "r+b") as f:
        f.write(b"X")                                              # corrupt, same size
    r = fetch(*R, "alpha")
    check(r.returncode == 0 and "refetch" in r.stdout and "sha256" in r.stdout, f"refetch: {r.stdout}")
    check(open(os.path.join(data, "alpha/a.txt"), "rb").read() == a, "alpha repaired")

    r = fetch(*R, "bad")
    check(r.returncode == 1 and "sha256" in r.stderr and "nothing was written" in r.stderr, f"bad sha: {r.stderr}")
    check(not os.path.exists(os.path.join(data, "bad/c.txt")) and not os.path.exists(os.path.join(data, "bad/c.txt.part")),
          "bad sha left a file behind")

    r = fetch(*R, "broken")
    check(r.returncode == 1 and "does-not-exist.txt" in r.stderr, f"broken url: {r.stderr}")
    check(not os.path.exists(os.path.join(data, "broken/x.txt.part")), "broken url left a .part")

    r = fetch(*R, "nourl")
    check(r.returncode == 1 and "no download URL is recorded; obtain it from test@0:nourl/n.txt" in r.stderr,
          f"no url: {r.stderr}")

    r = fetch(*R, "unknownsha")
    check(r.returncode == 0 and f"sha256 {hashlib.sha256(u).hexdigest()}, {len(u)} bytes" in r.stdout,
          f"unknown sha: {r.stdout}")

    r = fetch(*R, "alpha", "nosuch")
    check(r.returncode == 2 and "unknown dataset 'nosuch'" in r.stderr and "alpha, beta, bad" in r.stderr,
          f"unknown name: {r.stderr}")
    r = fetch(*R)
    check(r.returncode == 2 and "name at least one dataset" in r.stderr, f"no names: {r.stderr}")
    r = fetch(*R, "--bogus", "alpha")
    check(r.returncode == 2, f"bad option: {r.returncode}")
    r = fetch(*R, "--from", os.path.join(TMP, "nope"), "alpha")
    check(r.returncode == 2 and "not a directory" in r.stderr, f"--from missing dir: {r.stderr}")

    r = fetch(*R, "--list")
    check(r.returncode == 0 and all(s in r.stdout for s in ("alpha", "present", "missing")), f"--list: {r.stdout}")

    envdata = os.path.join(TMP, "envdata")
    r = fetch("--registry", regp, "alpha", env={"PRUNEBENCH_DATA": envdata})
    check(r.returncode == 0 and os.path.isfile(os.path.join(envdata, "alpha/a.txt")), f"PRUNEBENCH_DATA: {r.stderr}")

    shared_data = os.path.join(SHARED, "data")
    if os.path.isdir(shared_data):
        copy = os.path.join(TMP, "copy")
        r = fetch("--data-dir", copy, "--from", shared_data, "all")
        fails = [l for l in r.stderr.splitlines() if l.startswith("FAIL")]
        check(r.returncode == 1 and len(fails) == 1 and "c4/c4-validation" in fails[0], f"--from all: {r.stderr}")
        check(r.stdout.count("(sha256 verified)") == 17, f"--from all verified: {r.stdout}")
        r = fetch("--data-dir", copy, "wikitext2", "ptb")        # already there: no network needed
        check(r.returncode == 0 and r.stdout.count("already present") == 5, f"present: {r.stdout} {r.stderr}")
        shutil.rmtree(copy, ignore_errors=True)
    else:
        print(f"note: {shared_data} absent; --from check not run", file=sys.stderr)

    print(f"data_fetch: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

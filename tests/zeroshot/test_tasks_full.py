"""test_tasks_full.py — every document of the seven full task files becomes the same
requests in prunebench (datasets/tasks*.c, dumped by dump_tasks) as in the independent
Python implementation of lm-eval's task code (lmeval_ref.py): contexts, continuations,
acc_norm lengths (Python len()) and gold, string for string. Skips without ../shared.

usage: test_tasks_full.py DUMP_TASKS_BINARY"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmeval_ref as ref  # noqa: E402

SHARED = os.environ.get("PB_SHARED", "../shared")
DATA = os.path.join(SHARED, "data")


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    if not os.path.isdir(DATA):
        print(f"SKIP: {DATA} not found", file=sys.stderr)
        return 77
    p = subprocess.run([args[0], DATA, *ref.TASKS], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print(f"dump_tasks failed: {p.stderr}", file=sys.stderr)
        return 1
    got = {}
    for line in p.stdout.splitlines():
        d = json.loads(line)
        got.setdefault(d["task"], []).append(d)
    failures = 0
    for task in ref.TASKS:
        docs = ref.load_task(DATA, task)
        ours = got.get(task, [])
        bad = 0
        if len(ours) != len(docs):
            print(f"FAIL {task}: {len(ours)} documents, reference {len(docs)}")
            failures += 1
            continue
        for k, ((reqs, choices, gold), d) in enumerate(zip(docs, ours)):
            want = ([c for c, _ in reqs], [x for _, x in reqs], [len(c) for c in choices], gold, k + 1)
            have = (d["ctx"], d["cont"], d["choice_len"], d["gold"], d["line"])
            if want != have:
                bad += 1
                if bad <= 3:
                    print(f"FAIL {task} doc {k}: ours {have!r}\n  reference {want!r}")
        failures += bad
        print(f"{'ok  ' if not bad else 'FAIL'} {task}: {len(docs)} documents, {bad} differ")
    print(f"zeroshot_tasks_full: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""test_exp_config.py — the run configurations pb_exp_load writes are YAML that an independent
reader (PyYAML) reads back to the values of the experiment file with their types (strings stay
strings however they look, amounts are floats, counts integers, unset options null), run_id is
the first 12 hex digits of the sha256 of that text, and the published rows read back as written.

Usage: test_exp_config.py EXP_DUMP (the test tool printing the expanded runs)."""
import hashlib
import os
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed")
    sys.exit(77)

EXP = r'''
name: types
models:
  - name: 7b
    path: "dir with space/m.gguf"
    tokenizer: "~/yes"
  - name: "null"
    path: "yes"
calibration: {dataset: "null.txt", samples: 3, seq_len: 16}
methods:
  - {name: d, method: depth, criterion: magnitude, protect_last: 2}
  - {name: f, criterion: wifn, structure: ul-um, bias_compensation: false}
sweep:
  model: [7b]
  ratio: [0, 1e-05, 0.5]
  seed: [18446744073709551]
evaluation:
  ppl: {datasets: ["a:b.txt"], bos_per_window: true}
recovery:
  lora: {data: "#x.json", alpha: 16, lr: 1e-4}
published:
  - {model: LLaMA-7B, method: "yes", ratio: 0.2, ptb: "32.4", c: null, d: 'q"uote', e: 1e-4, t: true, f: ">x", g: -3}
'''


def main():
    tool = sys.argv[1]
    tmp = os.environ.get("PB_TMP", "/tmp")
    path = os.path.join(tmp, "exp_config_types.yaml")
    with open(path, "w") as f:
        f.write(EXP)
    out = subprocess.run([tool, path, "--config", "--published"], capture_output=True, text=True)
    if out.returncode != 0:
        print("exp_dump failed:", out.stderr)
        return 1
    lines = out.stdout.split("\n")
    runs, i = [], 1
    while i < len(lines) and lines[i] and lines[i][0].isdigit():
        idx, run_id, label = lines[i].split(" ", 2)
        j = lines.index("---", i + 1)
        text = "\n".join(lines[i + 1:j]) + "\n"
        runs.append((run_id, label, text))
        i = j + 1
    fails = 0

    def check(cond, what):
        nonlocal fails
        if not cond:
            print("FAIL:", what)
            fails += 1

    check(len(runs) == 2 + 2 * 3, "run count %d" % len(runs))
    for run_id, label, text in runs:
        check(hashlib.sha256(text.encode()).hexdigest()[:12] == run_id, "run_id of " + label)
        cfg = yaml.safe_load(text)
        check(isinstance(cfg, dict), "config of %s is a mapping" % label)
    dense = yaml.safe_load(runs[0][2])
    check(dense["model"] == {"name": "7b", "path": "dir with space/m.gguf", "tokenizer": "~/yes"}, "dense model %r" % dense["model"])
    check(dense["prune"] is None, "dense prune")
    check(dense["evaluation"]["ppl"] == {"datasets": ["a:b.txt"], "seq_len": 128, "max_windows": 0, "bos_per_window": True},
          "ppl %r" % dense["evaluation"]["ppl"])
    check(dense["evaluation"]["zeroshot"] is None and dense["evaluation"]["speed"] is None, "absent sections")
    n = yaml.safe_load(runs[1][2])
    check(n["model"] == {"name": "null", "path": "yes", "tokenizer": None}, "model 2 %r" % n["model"])
    labels = [r[1] for r in runs[2:]]
    check(labels == ["7b/d/ratio=0.0/seed=18446744073709551", "7b/d/ratio=1.0e-05/seed=18446744073709551",
                     "7b/d/ratio=0.5/seed=18446744073709551", "7b/f/ratio=0.0/seed=18446744073709551",
                     "7b/f/ratio=1.0e-05/seed=18446744073709551", "7b/f/ratio=0.5/seed=18446744073709551"],
          "labels %r" % labels)
    d = yaml.safe_load(runs[3][2])
    check(d["prune"] == {"method": "depth", "criterion": "magnitude", "granularity": None, "protect_first": 0,
                         "protect_last": 2, "iterative": False, "layers": None, "aggregation": None, "structure": None,
                         "metric": None, "bias_compensation": True, "ratio": 1e-05, "native": None, "num_blocks": None},
          "depth prune %r" % d["prune"])
    check(type(d["prune"]["ratio"]) is float and d["seed"] == 18446744073709551, "types of ratio, seed")
    check(d["calibration"] == {"dataset": "null.txt", "split": None, "samples": 3, "seq_len": 16, "sampling": "random"},
          "calibration %r" % d["calibration"])
    lora = d["recovery"]["lora"]
    check(lora["data"] == "#x.json" and lora["alpha"] == 16.0 and type(lora["alpha"]) is float and lora["lr"] == 1e-4
          and type(lora["dropout"]) is float and lora["rank"] == 8, "lora %r" % lora)
    f = yaml.safe_load(runs[5][2])
    check(f["prune"]["method"] == "flap" and f["prune"]["criterion"] is None and f["prune"]["metric"] == "wifn"
          and f["prune"]["structure"] == "ul-um" and f["prune"]["bias_compensation"] is False
          and f["prune"]["ratio"] == 0.0 and type(f["prune"]["ratio"]) is float, "flap prune %r" % f["prune"])
    k = out.stdout.index("published:\n")
    pub = yaml.safe_load(out.stdout[k:])["published"]
    check(pub == [{"model": "LLaMA-7B", "method": "yes", "ratio": 0.2, "ptb": "32.4", "c": None, "d": 'q"uote',
                   "e": "1e-4", "t": True, "f": ">x", "g": -3}], "published %r" % pub)
    # PyYAML (YAML 1.1) reads a plain 1e-4 as text, as it would have read the experiment file
    src = yaml.safe_load(EXP)["published"]
    check(pub == src, "published differs from the file's rows: %r vs %r" % (pub, src))
    if fails:
        return 1
    print("test_exp_config: ok (%d runs)" % len(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""test_sft_ref.py — datasets/sft.c against an independent Python version of the recovery
scripts' data step (LLM-Pruner post_training.py, Shortened LLaMA lora_retrain.py, both from
Alpaca-LoRA finetune.py), on the real LLaMA tokenizer.

The reference here is written from the scripts, not from our C code:
  - prompts by str.format on the Alpaca-LoRA templates, output appended when non-empty
    (Prompter.generate_prompt: `if input:` picks the template, `if label:` appends);
  - tokenize() = HF LlamaTokenizer: BOS (id 1) + sentencepiece encode, truncation to
    cutoff_len, EOS appended when the last id is not EOS and the length is < cutoff_len;
  - labels = [-100] * len(tokenize(user_prompt, add_eos_token=False)) + full[user_prompt_len:]
    (the scripts run without --add_eos_token), and the causal-LM shift: position t is
    trained on labels[t+1]. Records whose shifted labels are all -100 are expected to be
    skipped and counted (our documented difference: the scripts keep them, with no loss).
All comparisons are exact (token ids and integer counts: there is nothing to round).

Checked: ids, label masks, n_tokens, n_skipped for cutoffs 24, 64 and 256, train_on_inputs
on and off, add_eos on and off, on ~55 generated records (with and without input, unicode,
whitespace, literal braces and special-token text, outputs ending exactly at cutoff-1 and
cutoff ids, empty output, prompts longer than the cutoff); JSON Lines gives the same as the
array; a packed batch; the seeded split against a Python splitmix64 / Fisher-Yates (with
pinned values); the text format on a synthetic file and TinyStories; bad inputs through the
tool (exit 1, one line naming FILE and record or line). When transformers is present, the
BOS + sentencepiece assumption is itself checked against HF LlamaTokenizer.

usage: test_sft_ref.py SFT_DUMP      (exit 77 when ../shared or sentencepiece is absent)"""
import json
import os
import random
import subprocess
import sys

SHARED = os.environ.get("PB_SHARED", "../shared")
TMP = os.path.join(os.environ.get("PB_TMP", "/tmp"), "train_data_ref")
TOK = os.path.join(SHARED, "data", "tokenizer", "tokenizer.model")
failures = []

# templates/alpaca.json of Alpaca-LoRA
PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                "{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


# ---- the reference ------------------------------------------------------------------------

class Ref:
    def __init__(self, sp):
        self.sp = sp
        self.bos, self.eos = sp.bos_id(), sp.eos_id()

    def tokenize(self, text, cutoff, add_eos):
        ids = ([self.bos] + self.sp.encode(text))[:cutoff]
        if add_eos and ids[-1] != self.eos and len(ids) < cutoff:
            ids.append(self.eos)
        return ids

    @staticmethod
    def prompt(rec, label=None):
        inp = rec.get("input")
        res = (PROMPT_INPUT.format(instruction=rec["instruction"], input=inp) if inp
               else PROMPT_NO_INPUT.format(instruction=rec["instruction"]))
        return res + label if label else res

    def examples(self, records, cutoff, train_on_inputs, add_eos):
        """[(ids, labels)] kept, and the skipped count."""
        out, skipped = [], 0
        for rec in records:
            full = self.tokenize(self.prompt(rec, rec["output"]), cutoff, add_eos)
            labels = list(full)
            if not train_on_inputs:
                upl = len(self.tokenize(self.prompt(rec), cutoff, False))
                labels = ([-100] * upl + labels[upl:])[:len(full)]
            if all(l == -100 for l in labels[1:]):
                skipped += 1
            else:
                out.append((full, labels))
        return out, skipped


def our_labels(ex):
    return [t if i >= ex["n_prompt"] else -100 for i, t in enumerate(ex["ids"])]


def dump(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.returncode, r.stderr
    return json.loads(r.stdout), 0, r.stderr


# ---- splitmix64 / Fisher-Yates, from the description in datasets/sft_batch.c ----------------

M64 = (1 << 64) - 1


def permute(p, state):
    st = state & M64

    def nxt():
        nonlocal st
        st = (st + 0x9E3779B97F4A7C15) & M64
        z = st
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(m):
        r = ((1 << 64) - m) % m
        while True:
            x = nxt()
            if x >= r:
                return x % m

    p = list(p)
    for i in range(len(p) - 1, 0, -1):
        j = below(i + 1)
        p[i], p[j] = p[j], p[i]
    return p


def py_split(n, val, seed):
    p = permute(range(n), seed)
    return p[val:], p[:val]


def py_shuffle(idx, seed, epoch):
    return permute(idx, seed ^ ((0xA0761D6478BD642F * ((epoch & 0xFFFFFFFF) + 1)) & M64))


# ---- records ----------------------------------------------------------------------------------

def make_records(ref):
    rng = random.Random(20240601)
    words = ("the of and to in is that it for was on are with as his they be at one have this from or had by "
             "word but what some we can out other were all there when up use your how said an each she which "
             "do their time if will way about many then them write would like so these her long make thing see").split()

    def sentence(k):
        return " ".join(rng.choice(words) for _ in range(k)).capitalize() + "."

    recs = []
    for i in range(8):  # no input, in the three ways the data has it
        r = {"instruction": sentence(rng.randint(3, 12)), "output": sentence(rng.randint(5, 30))}
        if i % 3 == 1:
            r["input"] = ""
        elif i % 3 == 2:
            r["input"] = None
        recs.append(r)
    for _ in range(8):  # with input
        recs.append({"instruction": sentence(rng.randint(3, 10)), "input": sentence(rng.randint(2, 15)),
                     "output": sentence(rng.randint(3, 40))})
    recs += [
        {"instruction": "Translate to Chinese.", "input": "Good morning", "output": "早上好！今天天气很好。"},
        {"instruction": "日本語で答えてください。", "input": "", "output": "はい、わかりました。ありがとう。"},
        {"instruction": "Add emoji", "output": "Party time 🎉🥳 with café, naïve, Ångström and Zoë \U0001F600"},
        {"instruction": "Combining marks", "output": "e\u0301 a\u0308 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"},
        {"instruction": "Zero width", "input": "a\u200bb\ufeffc", "output": "x\u00a0y\u3000z\u2028w"},
        {"instruction": "  Leading and trailing spaces  ", "input": "   ", "output": "  spaced out  "},
        {"instruction": "Tabs\tand\nnewlines\n\n\nmany", "output": "line1\nline2\r\nline3\n\n"},
        {"instruction": "Braces {instruction} and {input}", "input": "{output} {}", "output": "{{literal}}"},
        {"instruction": "Special token text", "output": "Ends with </s>"},
        {"instruction": "Special token text 2", "input": "<s> at start", "output": "<unk> and </s> inside"},
        {"instruction": "Quotes and escapes", "output": "He said \"hi\" \\ back\\slash / and \u00e9"},
        {"instruction": "Numbers", "output": "3.14159 2024-06-01 1,000,000 0x1F"},
        {"instruction": "Empty output", "output": ""},
        {"instruction": "Empty output with input", "input": "context", "output": ""},
        {"instruction": "Single char", "output": "a"},
        {"instruction": "Newline only", "output": "\n"},
        {"instruction": "Code", "input": "def f(x):\n    return x", "output": "```python\ndef f(x):\n    return x * 2\n```"},
    ]
    # long outputs and a prompt longer than every cutoff
    for k in (60, 200, 400):
        recs.append({"instruction": "Write a long story.", "output": " ".join(sentence(12) for _ in range(k // 12 + 1))})
    recs.append({"instruction": " ".join(sentence(15) for _ in range(25)), "output": "Too late."})
    recs.append({"instruction": "Long input", "input": " ".join(sentence(10) for _ in range(30)), "output": "x"})
    # outputs ending exactly at cutoff-1 and cutoff ids (before EOS): LLaMA splits digits into
    # one id each, so every extra digit adds exactly one id
    for cutoff in (24, 64, 256):
        for target in (cutoff - 2, cutoff - 1, cutoff):
            for inst in ("Count.", "Digits"):
                rec = {"instruction": inst, "output": "Answer: 1"}
                n0 = len(ref.tokenize(ref.prompt(rec, rec["output"]), 10**9, False))
                if n0 > target:
                    continue
                rec["output"] += "7" * (target - n0)
                n = len(ref.tokenize(ref.prompt(rec, rec["output"]), 10**9, False))
                if check(n == target, f"boundary record for {target}: {n} ids"):
                    recs.append(rec)
                break
    while len(recs) < 55:
        recs.append({"instruction": sentence(4), "input": sentence(3) if len(recs) % 2 else "", "output": sentence(8)})
    return recs


def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for i, r in enumerate(recs):
            f.write(json.dumps(r, ensure_ascii=bool(i % 2)) + ("\r\n" if i % 5 == 0 else "\n"))
            if i % 7 == 0:
                f.write("   \n")


# ---- text format reference ----------------------------------------------------------------------

def text_windows(ref, path, cutoff):
    """A .jsonl file: one document per line ("text"); any other file: one document, read
    byte for byte (newline="" keeps CR and CRLF as they are)."""
    if path.endswith(".jsonl"):
        docs = [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
    else:
        docs = [open(path, encoding="utf-8", newline="").read()]
    stream = []
    for doc in docs:
        stream += [ref.bos] + ref.sp.encode(doc)
    wins = [stream[i:i + cutoff] for i in range(0, len(stream), cutoff)]
    return [w for w in wins if len(w) >= 2]


def main():
    args = [a for a in sys.argv[1:] if a != "ARGS"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    exe = args[0]
    if not os.path.exists(TOK):
        print(f"SKIP: {TOK} not found (set PB_SHARED)", file=sys.stderr)
        return 77
    try:
        import sentencepiece as spm
    except ImportError:
        print("SKIP: the sentencepiece Python package is not installed", file=sys.stderr)
        return 77
    os.makedirs(TMP, exist_ok=True)
    ref = Ref(spm.SentencePieceProcessor(model_file=TOK))
    check(ref.bos == 1 and ref.eos == 2, f"LLaMA tokenizer bos/eos {ref.bos}/{ref.eos}")

    recs = make_records(ref)
    arr = os.path.join(TMP, "alpaca.json")
    with open(arr, "w", encoding="utf-8") as f:
        json.dump(recs, f, indent=2, ensure_ascii=False)
    jl = os.path.join(TMP, "alpaca.jsonl")
    write_jsonl(jl, recs)
    print(f"{len(recs)} records", file=sys.stderr)

    # 1. examples, every configuration
    n_checked = 0
    for cutoff in (24, 64, 256):
        for toi in (False, True):
            for eos in (True, False):
                cfg = f"cutoff {cutoff} train_on_inputs {toi} add_eos {eos}"
                want, skipped = ref.examples(recs, cutoff, toi, eos)
                opts = (["--train-on-inputs"] if toi else []) + ([] if eos else ["--no-eos"])
                got, rc, err = dump(exe, "load", TOK, arr, "alpaca", cutoff, *opts)
                if not want:  # every record skipped: the load is an error naming the file
                    check(got is None and rc == 1 and err.strip() == f"{arr}: no training example: {skipped} "
                          f"record(s), none with a labelled token within {cutoff} tokens", f"{cfg}: {rc} {err!r}")
                    continue
                if not check(got is not None, f"{cfg}: load failed: {err}"):
                    continue
                check(got["n"] == len(want) and got["n_skipped"] == skipped,
                      f"{cfg}: n {got['n']} skipped {got['n_skipped']}, want {len(want)} {skipped}")
                check(got["n_tokens"] == sum(len(w[0]) for w in want), f"{cfg}: n_tokens")
                for i, (ex, (ids, labels)) in enumerate(zip(got["examples"], want)):
                    ok = check(ex["ids"] == ids and our_labels(ex) == labels,
                               f"{cfg}: example {i}:\n ours {ex['ids']} n_prompt {ex['n_prompt']}\n  ref {ids}\n"
                               f"  ref labels {labels}")
                    n_checked += ok
                    if not ok:
                        break
                # JSON Lines: the very same output
                got_l, _, err_l = dump(exe, "load", TOK, jl, "alpaca", cutoff, *opts)
                check(got_l == got, f"{cfg}: JSONL differs from the array: {err_l}")
    print(f"{n_checked} examples compared", file=sys.stderr)
    # the configurations really exercised each edge (else the comparison above proves less)
    want256, sk256 = ref.examples(recs, 256, False, True)
    lens = [len(ids) for ids, _ in want256]
    check(sk256 >= 2 and 256 in lens and any(ids[-1] == 2 and len(ids) == 256 for ids, _ in want256)
          and any(ids[-1] != 2 for ids, _ in want256), "records do not cover the cutoff/EOS/skip edges")

    # 2. HF LlamaTokenizer agrees that tokenize() is BOS + sentencepiece (records with
    #    special-token text excluded: HF matches "</s>" in text, sentencepiece does not)
    try:
        from transformers import LlamaTokenizer
        hf = LlamaTokenizer(vocab_file=TOK, legacy=True)
    except Exception as e:  # noqa: BLE001 - any import/constructor problem means "not available"
        print(f"note: HF LlamaTokenizer cross-check not run ({e.__class__.__name__})", file=sys.stderr)
    else:
        bad = n_hf = 0
        for rec in recs:
            text = ref.prompt(rec, rec["output"])
            if "<s>" in text or "</s>" in text or "<unk>" in text:
                continue
            for cutoff in (64, 256):
                bad += hf(text, truncation=True, max_length=cutoff)["input_ids"] != ref.tokenize(text, cutoff, False)
                n_hf += 1
        print(f"{n_hf} prompts checked against HF LlamaTokenizer", file=sys.stderr)
        check(bad == 0 and n_hf > 80, f"HF LlamaTokenizer differs from BOS + sentencepiece on {bad} prompt(s)")

    # 3. a packed batch and the split
    want, _ = ref.examples(recs, 64, False, True)
    sel = [0, len(want) - 1, 5, 5, len(want) // 2]
    got, _, err = dump(exe, "load", TOK, arr, "alpaca", 64, "--split", 7, 42, "--pack", 0,
                       ",".join(map(str, sel)))
    if check(got is not None, f"pack: {err}"):
        T = max(len(want[i][0]) for i in sel)
        tokens = [want[i][0] + [0] * (T - len(want[i][0])) for i in sel]
        targets = [[(want[i][1][t + 1] if t + 1 < len(want[i][1]) and want[i][1][t + 1] != -100 else -1)
                    for t in range(T)] for i in sel]
        p = got["pack"]
        check(p["T"] == T and p["tokens"] == tokens and p["targets"] == targets,
              f"pack differs: T {p['T']} vs {T}")
        check(p["labelled"] == sum(v >= 0 for row in targets for v in row), "pack: labelled count")
        check(p["written_past_end"] == 0, "pack wrote past B*T")
        tr, va = py_split(got["n"], 7, 42)
        check(got["split"] == {"train": tr, "val": va}, "split differs from the Python splitmix64/Fisher-Yates")
    # pinned values (the same as test_sft_batch.c): a change of algorithm must be noticed
    check(py_split(10, 3, 42) == ([8, 6, 4, 7, 2, 1, 3], [0, 9, 5]), "python split pin")
    check(py_shuffle(range(12), 1234, 0) == [0, 2, 8, 3, 7, 5, 4, 11, 9, 10, 1, 6], "python shuffle pin")
    for n, v, seed in ((1, 0, 0), (2, 1, 5), (1000, 123, 2**64 - 1), (52002, 2000, 42)):
        got, _, err = dump(exe, "split", n, v, seed)
        check(got == dict(zip(("train", "val"), py_split(n, v, seed))), f"split {n} {v} {seed}: {err}")
    for n, seed, epoch in ((5, 1, 0), (97, 42, 3), (1000, 2**63 + 5, -2)):
        got, _, err = dump(exe, "shuffle", n, seed, epoch)
        check(got == py_shuffle(range(n), seed, epoch), f"shuffle {n} {seed} {epoch}: {err}")

    # 4. text format
    txt = os.path.join(TMP, "docs.txt")
    with open(txt, "w", encoding="utf-8", newline="") as f:
        f.write("\n\n  First document, first line.  \nsecond line\r\n\u3000\t\r\nSecond document 🎉 café\r"
                "continues after a lone CR\n\n\n\nThird.\n \nx\n\n" + "Long " * 300 + "\nend")
    docs = os.path.join(TMP, "docs.jsonl")
    with open(docs, "w", encoding="utf-8") as f:
        for d in ("First document.\n\nSecond paragraph.", "Second document 🎉 café", "Long " * 300):
            f.write(json.dumps({"text": d}) + "\n")
    stories = os.path.join(SHARED, "data", "tinystories", "tinystories.txt")
    for path in (txt, docs, stories):
        for cutoff in (2, 7, 24, 256):
            want = text_windows(ref, path, cutoff)
            got, _, err = dump(exe, "load", TOK, path, "text", cutoff)
            if check(got is not None, f"text {path} {cutoff}: {err}"):
                check([e["ids"] for e in got["examples"]] == want and all(e["n_prompt"] == 0 for e in got["examples"])
                      and got["n_skipped"] == 0, f"text {os.path.basename(path)} cutoff {cutoff}: "
                      f"{len(got['examples'])} windows vs {len(want)}")

    # 5. bad inputs through the tool: exit 1, one line naming the file and the record / line
    cases = [
        ("e1.json", '[{"instruction": "a", "output": "b"}, {"instruction": "a"}]', ': record 1: missing string field "output"'),
        ("e2.json", '[{"instruction": "a", "output": "b"}, []]', ": record 1: not a JSON object"),
        ("e3.json", '[\n{"instruction": "a", "output": 7}]', ': record 0: field "output" is not a string'),
        ("e4.json", '[\n{"instruction": "a",\n"output": "b",}]', ":3:"),
        ("e5.jsonl", '{"instruction": "a", "output": "b"}\n\n{"output": "b"}\n', ':3: missing string field "instruction"'),
        ("e6.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"\n', ":2:"),
        ("e7.json", "", ": empty file"),
        ("e8.json", "[]", ": no training example"),
    ]
    for name, content, where in cases:
        p = os.path.join(TMP, name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(content)
        got, rc, err = dump(exe, "load", TOK, p, "alpaca", 256)
        check(rc == 1 and err.startswith(p + where) and err.count("\n") == 1, f"bad input {name}: rc {rc} {err!r}")

    print(f"train_data_ref: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

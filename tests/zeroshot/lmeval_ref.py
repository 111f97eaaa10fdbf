"""lmeval_ref.py — an independent Python implementation of lm-evaluation-harness's 0-shot
semantics for the seven tasks (../shared/reference/eval-protocol.md, sections 1-2), used by
the zeroshot tests as the reference for prunebench.

Task readers work on the original files with Python's own str methods and re (so the C
ports of strip/capitalize/re.sub are checked against the real thing); tokenization is
python sentencepiece; the model is transformers' LlamaForCausalLM in float64."""
import json
import math
import os
import re

TASKS = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
FILES = {
    "boolq": ("boolq/dev.jsonl", None),
    "piqa": ("piqa/valid.jsonl", "piqa/valid-labels.lst"),
    "hellaswag": ("hellaswag/hellaswag_val.subset1000.jsonl", None),
    "winogrande": ("winogrande/dev.jsonl", "winogrande/dev-labels.lst"),
    "arc_easy": ("arc_easy/ARC-Easy-Test.jsonl", None),
    "arc_challenge": ("arc_challenge/ARC-Challenge-Test.jsonl", None),
    "openbookqa": ("openbookqa/test.jsonl", None),
}
HAS_NORM = {"boolq": False, "piqa": True, "hellaswag": True, "winogrande": False, "arc_easy": True,
            "arc_challenge": True, "openbookqa": True}


def hellaswag_preprocess(text):
    """lm-eval's HellaSwag.preprocess (v0.3 and v0.4 are identical)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def doc_requests(task, doc, label=None):
    """-> (list of (context, continuation), choices (for acc_norm), gold)."""
    if task == "boolq":
        # SuperGLUE's passage is Google's title + " -- " + passage; label = answer
        passage = doc["title"] + " -- " + doc["passage"]
        ctx = f"{passage}\nQuestion: {doc['question']}?\nAnswer:"
        choices = ["no", "yes"]
        gold = int(doc["answer"])
        return [(ctx, " " + c) for c in choices], choices, gold
    if task == "piqa":
        ctx = "Question: " + doc["goal"] + "\nAnswer:"
        choices = [doc["sol1"], doc["sol2"]]
        return [(ctx, " " + c) for c in choices], choices, int(label)
    if task == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        query = hellaswag_preprocess(doc["activity_label"] + ": " + ctx)
        choices = [hellaswag_preprocess(e) for e in doc["endings"]]
        return [(query, " " + c) for c in choices], choices, int(doc["label"])
    if task == "winogrande":
        idx = doc["sentence"].index("_")
        target = " " + doc["sentence"][idx + 1:].strip()
        options = [doc["option1"], doc["option2"]]
        reqs = [(doc["sentence"][:idx] + o, target) for o in options]
        return reqs, options, {"1": 0, "2": 1}[label]
    if task in ("arc_easy", "arc_challenge"):
        q = doc["question"]
        ctx = "Question: " + q["stem"] + "\nAnswer:"
        choices = [c["text"] for c in q["choices"]]
        key = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}.get(doc["answerKey"], doc["answerKey"])
        gold = ["A", "B", "C", "D", "E"].index(key)                       # v0.3
        assert gold == [c["label"] for c in q["choices"]].index(doc["answerKey"])  # v0.4
        return [(ctx, " " + c) for c in choices], choices, gold
    if task == "openbookqa":
        q = doc["question"]
        choices = [c["text"] for c in q["choices"]]
        gold = ["A", "B", "C", "D"].index(doc["answerKey"].strip())
        return [(q["stem"], " " + c) for c in choices], choices, gold
    raise ValueError(task)


def load_task(data_dir, task, limit=None):
    docs_path, labels_path = FILES[task]
    with open(os.path.join(data_dir, docs_path), encoding="utf-8") as f:
        lines = f.read().splitlines()
    labels = [None] * len(lines)
    if labels_path:
        with open(os.path.join(data_dir, labels_path), encoding="utf-8") as f:
            labels = f.read().splitlines()
        assert len(labels) == len(lines), (task, len(labels), len(lines))
    out = []
    for line, lab in zip(lines, labels):
        if limit is not None and len(out) >= limit:
            break
        out.append(doc_requests(task, json.loads(line), lab))
    return out


def encode_request(sp, ctx, cont, mode, bos):
    """(context ids, continuation ids) as lm-eval builds them."""
    pre = [sp.bos_id()] if bos else []
    if ctx == "":
        return [sp.bos_id() if bos else sp.eos_id()], sp.encode(cont)
    if mode == "separate":                                          # v0.3
        return pre + sp.encode(ctx), sp.encode(cont)
    n_spaces = len(ctx) - len(ctx.rstrip())                         # _encode_pair
    if n_spaces > 0:
        cont = ctx[-n_spaces:] + cont
        ctx = ctx[:-n_spaces]
    whole = pre + sp.encode(ctx + cont)
    ctx_enc = pre + sp.encode(ctx)
    return ctx_enc, whole[len(ctx_enc):]


def loglikelihood(model, ctx_enc, cont_enc, max_length):
    """Sum of log-softmax over the continuation and is_greedy, as lm-eval's HFLM."""
    import torch
    inp = (ctx_enc + cont_enc)[-(max_length + 1):][:-1]
    with torch.no_grad():
        # the LM head applied to the scored positions only: the same numbers as slicing
        # model(...).logits, without projecting every context position onto 32000 pieces
        h = model.model(torch.tensor([inp]), use_cache=False).last_hidden_state[0]
        logits = model.lm_head(h[len(inp) - len(cont_enc):])
    logp = torch.log_softmax(logits.double(), dim=-1)
    tgt = torch.tensor(cont_enc)
    ll = float(logp.gather(1, tgt[:, None]).sum())
    greedy = bool((logp.argmax(dim=-1) == tgt).all())
    return ll, greedy


def argmax_first(xs):
    """numpy.argmax on a list: the first maximum."""
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def mean_stderr(xs):
    """lm-eval's mean_stderr: sample std (ddof=1) / sqrt(n)."""
    n = len(xs)
    mu = sum(xs) / n
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)

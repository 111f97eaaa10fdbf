#!/usr/bin/env python3
"""test_bbpe.py — byte-level BPE against HF tokenizers 0.19.1. Trains small byte-level BPE
tokenizers with HF tokenizers (deterministic) in four pre-tokenizer styles: GPT-2
(ByteLevel regex), GPT-2 with add_prefix_space, LLaMA-3 (Split regex + ByteLevel without
regex, ignore_merges, BOS template) and SmolLM2 (Digits + ByteLevel); saves tokenizer.json
and compares our ids with HF's on a test set of edge cases (non-ASCII, digits, whitespace,
contractions, punctuation, added tokens, the empty string), every vocabulary token spelled
out as text, and WikiText-2 test lines. The same vocab and merges then go through
pb_tok_from_vocab with the matching GGUF `pre` name and must give the same ids (with
special tokens not matched in the text, as tokenizer.h specifies). Decoding must give the
text back.

usage: test_bbpe.py TOK_ENCODE"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokutil as tu

helper = sys.argv[1]
wiki_valid, wiki_test = tu.shared_or_skip("data/wikitext2/wiki.valid.raw", "data/wikitext2/wiki.test.raw")
try:
    import tokenizers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
except ImportError:
    tu.skip("python tokenizers is not installed")
if tokenizers.__version__ != "0.19.1":
    print("note: reference is tokenizers 0.19.1, found %s" % tokenizers.__version__)

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")

edge = [
    "", " ", "  leading spaces", "trailing   ", "Hello world", "tabs\tand\t\ttabs", "new\nlines\n\n\nmore",
    "windows\r\nline\r\nendings\r\n", "\r\n\r\n", "mixed \t\n \r\n  x", " " * 50 + "x", "\n" * 20, "x" + " " * 7,
    "naïve café résumé", "Straße ÆØÅ", "日本語のテキストです。", "中文测试，标点！", "한국어 문장", "Ελληνικά", "Русский текст",
    "עברית", "العربية", "emoji 🙂🚀👍🏽 family 👨‍👩‍👧 flag 🇫🇷", "e\u0301 combining a\u0308 o\u0302\u0323",
    "12345678901234567890", "3.14159 2,000,000 1e10", "year 2024 and 007", "١٢٣ arabic-indic ٤٥", "Ⅻ roman ² ½",
    "I'll we're they've it's don't I'm he'd", "IT'S I'LL WE'RE THEY'VE I'M HE'D DON'T", "It'S mixed'Ll 'S 'sX",
    "Hello!!! ... ??? --- ;;; (parens) [brackets] {braces} <angle>", "a...b", "@#$%^&*", "''''", "\"quoted\"",
    "text<|endoftext|>more", "<|endoftext|>", "a <|endoftext|> b", "<|endoftext|><|endoftext|>", "<|endoftext",
    "a   <mask>   b", "<mask>", "x<custom>y <custom> z", "hello brave world and hello brave worlds",
    "a\u00a0b", "a\u3000b", "a\u180eb", "x \u180ey", "a\u180e\u180eb \u180e \u180e", "a\u0085b", "a\u2028b", "a\u200bb", "\ufeffbom", "\x00nul\x01ctl\x7f",
    "def f(x):\n    return x**2  # comment\n", "\t\t\tindent", "    four spaces\n        eight",
    "ſ long s 'ſ", "K Kelvin", "ǅ titlecase", "kawi \U00011f51\U00011f52 digits", " zzqx", "qqqq zzqx qqqq", "été 1234 x1234",
]
train_extra = edge * 3


def style_gpt2(prefix=False):
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=True)
    t.decoder = decoders.ByteLevel()
    return t, ["<|endoftext|>"], ("gpt2" if not prefix else None)


def style_llama3():
    t = Tokenizer(models.BPE(ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    return t, ["<|begin_of_text|>", "<|end_of_text|>", "<|endoftext|>"], "llama-bpe"


def style_smollm():
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    return t, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "smollm"


corpus = open(wiki_valid, encoding="utf-8").read().split("\n") + train_extra
test_lines = open(wiki_test, encoding="utf-8").read().split("\n")[:1500]
ck = tu.Checker("test_bbpe")


def gpt2_byte_map():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


unmap = gpt2_byte_map()


def with_extra_tokens(j, extra):
    """Adds tokens right after the model vocabulary; added tokens move up behind them."""
    nv = len(j["model"]["vocab"])
    for e in extra:
        if e not in j["model"]["vocab"]:
            j["model"]["vocab"][e] = nv
            nv += 1
    for a in j["added_tokens"]:
        if a["content"] not in j["model"]["vocab"]:
            a["id"] = nv
            nv += 1
    if j["post_processor"]:
        for st in j["post_processor"]["special_tokens"].values():
            st["ids"] = [next(a["id"] for a in j["added_tokens"] if a["content"] == st["id"])]

for name, build in (("gpt2", style_gpt2), ("gpt2_prefix", lambda: style_gpt2(True)), ("llama3", style_llama3),
                    ("smollm", style_smollm)):
    tok, specials, pre = build()
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("<custom>", special=False, normalized=False),
                    AddedToken("brave world", special=False, normalized=True)])
    if name == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                           special_tokens=[("<|begin_of_text|>", bos)])
    path = os.path.join(tu.tmpdir(), "bbpe_%s.json" % name)
    tok.save(path)
    # Tokens no merge sequence can build: only ignore_merges (LLaMA-3) may emit them whole.
    # Trained vocabularies never have such tokens, real LLaMA-3 (tiktoken-made) ones do.
    j = json.load(open(path, encoding="utf-8"))
    with_extra_tokens(j, ["\u0120zzqx", "qqqq", "\u0120\u00c3\u00a9t\u00c3\u00a9", "1234"])
    json.dump(j, open(path, "w", encoding="utf-8"), ensure_ascii=False)

    # Pre-tokenization check that does not depend on which merges training made: every piece
    # HF's pre-tokenizer cuts becomes a token and ignore_merges is on, so each piece comes out
    # as one id exactly when our pieces are HF's pieces.
    jp = json.loads(json.dumps(j))
    hf_pre = Tokenizer.from_file(path).pre_tokenizer
    with_extra_tokens(jp, sorted({p for t in edge + test_lines for p, _ in hf_pre.pre_tokenize_str(t)}))
    jp["model"]["ignore_merges"] = True
    pieces_path = os.path.join(tu.tmpdir(), "bbpe_pieces_%s.json" % name)
    json.dump(jp, open(pieces_path, "w", encoding="utf-8"), ensure_ascii=False)
    ptok = Tokenizer.from_file(pieces_path)
    ours = tu.encode_records(helper, [pieces_path], edge + test_lines, "bbpe_pieces")
    for t, o in zip(edge + test_lines, ours):
        ck.same("%s pre-tokenizer pieces" % name, o, ptok.encode(t, add_special_tokens=False).ids, t)

    if name == "gpt2":
        # tokenizers ignores the ids written for added tokens that are not in the model
        # vocabulary: it numbers them itself (special ones first). So must we.
        for a in j["added_tokens"]:
            if a["content"] not in j["model"]["vocab"]:
                a["id"] += 1000
        j["added_tokens"].reverse()
        odd = os.path.join(tu.tmpdir(), "bbpe_gpt2_odd_ids.json")
        json.dump(j, open(odd, "w", encoding="utf-8"), ensure_ascii=False)
        odd_tok = Tokenizer.from_file(odd)
        ours = tu.encode_records(helper, [odd], edge, "bbpe_odd")
        for t, o in zip(edge, ours):
            ck.same("added-token ids as tokenizers assigns them", o, odd_tok.encode(t, add_special_tokens=False).ids, t)
    tok = Tokenizer.from_file(path)  # compare with what the file says, as a user would load it
    vocab = tok.get_vocab(with_added_tokens=True)
    n_vocab = max(vocab.values()) + 1
    by_id = {i: s for s, i in vocab.items()}
    # every token spelled out as text exercises the merge order (and ignore_merges)
    token_texts = []
    for i in range(n_vocab):
        s = by_id[i]
        if all(c in unmap for c in s):
            token_texts.append(bytes(unmap[c] for c in s).decode("utf-8", "replace"))
    texts = edge + token_texts + test_lines

    info, _ = tu.run(helper, [path, "info"])
    n, bos_id, eos_id, kind, add_bos = map(int, info.split())
    ck.same("%s info: vocab size, kind" % name, (n, kind), (n_vocab, 1))
    ck.same("%s default add_bos" % name, add_bos, 1 if name == "llama3" else 0)

    ref = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    ours = tu.encode_records(helper, [path], texts, "bbpe_" + name)
    for t, o, r in zip(texts, ours, ref):
        ck.same("%s tokenizer.json" % name, o, r, t)
    ref_bos = [tok.encode(t).ids for t in edge]
    ours_bos = tu.encode_records(helper, [path], edge, "bbpe_bos_" + name, bos=bool(add_bos))
    for t, o, r in zip(edge, ours_bos, ref_bos):
        ck.same("%s with default special tokens" % name, o, r, t)

    # decoding: the text comes back (the ids contain added tokens: special ones decode to nothing)
    dec = tu.decode_records(helper, [path], ref, "bbpe_dec_" + name)
    for t, i, d in zip(texts, ref, dec):
        ck.same("%s decode" % name, d, tok.decode(i, skip_special_tokens=True).encode("utf-8"), t)

    if pre is None:
        continue
    # the same vocabulary as a GGUF reader would hand it over
    model = json.load(open(path, encoding="utf-8"))["model"]
    added = {a["id"]: a for a in json.load(open(path, encoding="utf-8"))["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [(3 if added[i]["special"] else 4) if i in added else 1 for i in range(n_vocab)]
    spec = {"model": "gpt2", "pre": pre, "tokens": [by_id[i] for i in range(n_vocab)], "types": types,
            "merges": merges, "bos_id": bos_id, "eos_id": eos_id}
    spec_path = os.path.join(tu.tmpdir(), "bbpe_vocab_%s.json" % name)
    json.dump(spec, open(spec_path, "w"))
    tok.encode_special_tokens = True  # HF's way of not matching special tokens in the text
    ref = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    ours = tu.encode_records(helper, ["--vocab-json", spec_path], texts, "bbpe_vocab_" + name)
    for t, o, r in zip(texts, ours, ref):
        ck.same("%s pb_tok_from_vocab(pre=%s)" % (name, pre), o, r, t)
    print("%s: vocab %d, %d texts" % (name, n_vocab, len(texts)))
ck.done()

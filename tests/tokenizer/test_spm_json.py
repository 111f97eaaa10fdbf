#!/usr/bin/env python3
"""test_spm_json.py — SentencePiece-like tokenizer.json files, as LLaMA-2 HF folders ship
them, made from the LLaMA tokenizer.model by transformers' LlamaTokenizerFast (from_slow;
this needs python protobuf): the legacy form (normalizer Prepend("▁") + Replace(" ", "▁"),
byte_fallback, <s> template) and the non-legacy one (Metaspace, prepend_scheme "first").
Our ids must equal HF tokenizers' on WikiText-2 test lines, PTB lines (whose "<unk>" HF
matches as an added token) and edge cases, and, on WikiText-2 lines, sentencepiece's ids
from tokenizer.model. Without protobuf the legacy file is assembled from transformers'
SentencePieceExtractor the way LlamaConverter does.

usage: test_spm_json.py TOK_ENCODE"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokutil as tu

helper = sys.argv[1]
model, wiki, ptb = tu.shared_or_skip("data/tokenizer/tokenizer.model", "data/wikitext2/wiki.test.raw",
                                     "data/ptb/ptb.valid.txt")
try:
    import sentencepiece as spm
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
except ImportError as e:
    tu.skip("python package missing: %s" % e)

sp = spm.SentencePieceProcessor(model_file=model)
ck = tu.Checker("test_spm_json")
files = {}
try:
    import google.protobuf  # noqa: F401  (LlamaConverter parses the model with it)
    from transformers import LlamaTokenizerFast
    for legacy in (True, False):
        fast = LlamaTokenizerFast(vocab_file=model, legacy=legacy, from_slow=True, add_prefix_space=True)
        d = os.path.join(tu.tmpdir(), "llama_fast_%s" % ("legacy" if legacy else "metaspace"))
        fast.save_pretrained(d)
        files["legacy" if legacy else "metaspace"] = os.path.join(d, "tokenizer.json")
except ImportError as e:
    print("note: %s; building the legacy tokenizer.json without LlamaTokenizerFast "
          "(apt-get install python3-protobuf for the real converter)" % e)
    from transformers.convert_slow_tokenizer import SentencePieceExtractor
    vocab, merges = SentencePieceExtractor(model).extract(
        vocab_scores=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())])
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in ("<unk>", "<s>", "</s>")])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    files["legacy"] = os.path.join(tu.tmpdir(), "llama_built_legacy.json")
    tok.save(files["legacy"])

# Early LLaMA-1 conversions mark <unk>, <s>, </s> normalized=true: HF then matches them in
# the normalized text, where the pattern itself went through the normalizer ("▁<s>").
j = json.load(open(files["legacy"], encoding="utf-8"))
for a in j["added_tokens"]:
    a["normalized"] = True
files["legacy_normalized_added"] = os.path.join(tu.tmpdir(), "llama_legacy_normalized_added.json")
json.dump(j, open(files["legacy_normalized_added"], "w", encoding="utf-8"), ensure_ascii=False)

wiki_lines = open(wiki, encoding="utf-8").read().split("\n")[:-1]
ptb_lines = open(ptb, encoding="utf-8").read().split("\n")[:1500]
edge = ["", " ", " yes", "yes", "\n\n", " \n", "Question: x?\nAnswer: yes", "  hello   world  ", "\t x", "a\r\nb",
        "naïve café", "日本語のテキスト", "emoji 🙂🚀 ok", "e\u0301", "Hello <s> world", "<s>x", "x</s>", "<unk>",
        " <s> ", "a<s>b</s>c<unk>d", "▁ already", "12345678901234567890", "\x00", "\ufffd", " " * 40]
texts = wiki_lines + [l + "\n" for l in wiki_lines[:500]] + ptb_lines + edge

for name, path in files.items():
    tok = Tokenizer.from_file(path)
    info, _ = tu.run(helper, [path, "info"])
    ck.same("%s info (n bos eos kind add_bos)" % name, info.split(), b"32000 1 2 0 1".split())
    ref = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    ours = tu.encode_records(helper, [path], texts, "spm_json_" + name)
    for t, o, r in zip(texts, ours, ref):
        ck.same("%s tokenizer.json vs tokenizers" % name, o, r, t)
    ours_bos = tu.encode_records(helper, [path], edge + wiki_lines[:100], "spm_json_bos_" + name, bos=True)
    for t, o in zip(edge + wiki_lines[:100], ours_bos):
        ck.same("%s with BOS vs tokenizers' default" % name, o, tok.encode(t).ids, t)
    if name == "legacy":
        # the legacy form is what sentencepiece does (WikiText has no "<s>", "</s>" or "<unk>")
        for t, o in zip(wiki_lines, ours):
            ck.same("legacy tokenizer.json vs sentencepiece", o, sp.encode(t), t)
    dec = tu.decode_records(helper, [path], ref[:len(wiki_lines)], "spm_json_dec_" + name)
    for t, i, d in zip(wiki_lines, ref, dec):
        ck.same("%s decode" % name, d, tok.decode(i, skip_special_tokens=True).encode("utf-8"), t)
    print("%s: %d texts" % (name, len(texts)))

# a real-size tokenizer.json cut short or replaced by noise: exit 1, one line naming the file
data = open(files["legacy"], "rb").read()
bad = os.path.join(tu.tmpdir(), "cut_tokenizer.json")
cases = [data[:c] for c in (0, 1, 2, 100, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1)]
cases += [bytes(random.Random(k).getrandbits(8) for _ in range(n)) for k, n in enumerate((5, 300, 70000))]
cases += [b"{" + bytes(random.Random(9).getrandbits(8) for _ in range(2000)), data.replace(b'"BPE"', b'"Unigram"'),
          data.replace(b'"merges":', b'"merges_":'), data.replace(b'"Prepend"', b'"NFKC"')]
for k, case in enumerate(cases):
    open(bad, "wb").write(case)
    r = subprocess.run([helper, bad, "info"], capture_output=True)
    err = r.stderr.decode("utf-8", "replace")
    ck.ok("bad tokenizer.json %d fails with one line naming the file" % k,
          r.returncode == 1 and err.count("\n") == 1 and bad in err, "exit %d: %s" % (r.returncode, err[:300]))
ck.done()

#!/usr/bin/env python3
"""test_spm.py — SentencePiece BPE against python sentencepiece 0.1.97 on the LLaMA
tokenizer.model: every WikiText-2 test line (with and without its newline), the whole file
as one string (timed), PTB and TinyStories lines, edge cases (spaces, control bytes, invalid
UTF-8) and the eval-protocol examples. The same vocabulary is also loaded as a llama2.c
tokenizer.bin (written here the way llama2.c's tokenizer.py exports it) and as a GGUF-style
vocabulary (pb_tok_from_vocab): both must give the same ids. Decoding token by token must
give back the text, and equal sentencepiece's decode.

usage: test_spm.py TOK_ENCODE"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokutil as tu

helper = sys.argv[1]
model, wiki, ptb, tiny = tu.shared_or_skip("data/tokenizer/tokenizer.model", "data/wikitext2/wiki.test.raw",
                                           "data/ptb/ptb.valid.txt", "data/tinystories/tinystories_val.txt")
try:
    import sentencepiece as spm
except ImportError:
    tu.skip("python sentencepiece is not installed")

sp = spm.SentencePieceProcessor(model_file=model)
ck = tu.Checker("test_spm")

wiki_text = open(wiki, encoding="utf-8").read()
wiki_lines = wiki_text.split("\n")[:-1]
ck.ok("wikitext line count", len(wiki_lines) == 4358, str(len(wiki_lines)))

edge = ["", " ", "  ", "yes", " yes", " no", "\n\n", " \n", "Question: x?\nAnswer: yes",
        "  hello   world  ", "\t x", "\x00", "a\r\nb", "naïve café", "日本語のテキスト", "emoji 🙂🚀 ok",
        "e\u0301 combining", "<s> literal </s> <unk>", "▁ already", "x" * 3000, " " * 100, "12345678901234567890",
        b"a\xffb\xc3", b"\xed\xa0\x80 \xc0\x80 \xf4\x90\x80\x80", b"\xef\xbf\xbd"]
examples = {" yes": [29871, 4874], "yes": [4874], " no": [29871, 694], "\n\n": [29871, 13, 13], " \n": [259, 13],
            "Question: x?\nAnswer: yes": [894, 29901, 921, 29973, 13, 22550, 29901, 4874]}
ptb_lines = open(ptb, encoding="utf-8").read().split("\n")
tiny_paras = open(tiny, encoding="utf-8").read().split("\n\n")[:3000]

texts = wiki_lines + [l + "\n" for l in wiki_lines] + edge + ptb_lines + tiny_paras


def ref_ids(t):
    return sp.encode(t) if isinstance(t, str) else sp.encode(t)


ref = [ref_ids(t) for t in texts]
for t, want in examples.items():
    ck.same("eval-protocol example (sentencepiece)", ref_ids(t), want, t)

ours = tu.encode_records(helper, [model], texts, "spm_model")
for t, o, r in zip(texts, ours, ref):
    ck.same("tokenizer.model", o, r, t)
for t, want in examples.items():
    ck.same("eval-protocol example", ours[texts.index(t)], want, t)
# add_bos puts BOS=1 first, nothing else changes
ours_bos = tu.encode_records(helper, [model], wiki_lines[:200], "spm_model_bos", bos=True)
for t, o, r in zip(wiki_lines, ours_bos, ref):
    ck.same("tokenizer.model with BOS", o, [1] + r, t)

# whole file as one string, timed
out, err = tu.run(helper, [model, "whole", wiki])
whole = [int(x) for x in out.split()]
ck.same("whole WikiText-2 test file", whole, sp.encode(wiki_text), "(whole file)")
secs = float(err.split("encode_seconds")[1].split()[0])
print("encoding the whole WikiText-2 test file (%d bytes, %d tokens): %.3f s" % (len(wiki_text.encode()), len(whole), secs))
# A quadratic merge loop takes minutes on 1.3 M symbols; 20 s leaves room for sanitizer builds.
ck.ok("whole-file encode time", secs < 20.0, "%.1f s" % secs)

# llama2.c tokenizer.bin exported from the same model
l2c = os.path.join(tu.tmpdir(), "llama_tokenizer.bin")
toks = []
for i in range(sp.get_piece_size()):
    p = sp.id_to_piece(i)
    p = "\n<s>\n" if i == sp.bos_id() else "\n</s>\n" if i == sp.eos_id() else p
    toks.append((sp.get_score(i), p.replace("\u2581", " ").encode("utf-8")))
with open(l2c, "wb") as f:
    f.write(struct.pack("<I", max(len(b) for _, b in toks)))
    for s, b in toks:
        f.write(struct.pack("<fi", s, len(b)) + b)
sub = wiki_lines + edge
for args, name in (([ "--llama2c", "32000", l2c], "llama2c"), ([l2c], "llama2c_auto")):
    ours = tu.encode_records(helper, args, sub, name)
    for t, o, r in zip(sub, ours, ref[:len(wiki_lines)] + ref[2 * len(wiki_lines):]):
        ck.same(name, o, r, t)


# GGUF-style vocabulary (what a GGUF reader hands to pb_tok_from_vocab)
def tok_type(i):
    return 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1


spec = {"model": "llama", "tokens": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
        "scores": [sp.get_score(i) for i in range(sp.get_piece_size())],
        "types": [tok_type(i) for i in range(sp.get_piece_size())], "bos_id": 1, "eos_id": 2, "unk_id": 0}
spec_path = os.path.join(tu.tmpdir(), "llama_vocab.json")
json.dump(spec, open(spec_path, "w"))
ours = tu.encode_records(helper, ["--vocab-json", spec_path], sub, "vocab_llama")
for t, o, r in zip(sub, ours, ref[:len(wiki_lines)] + ref[2 * len(wiki_lines):]):
    ck.same("GGUF-style llama vocab", o, r, t)
info, _ = tu.run(helper, ["--vocab-json", spec_path, "info"])
ck.same("GGUF-style vocab info (n bos eos kind add_bos)", info.split(), b"32000 1 2 0 1".split())

# decoding: token by token with the previous id, as a generation loop does
dec_texts = wiki_lines + [l + "\n" for l in wiki_lines] + tiny_paras[:500]
dec_ref = [sp.encode(t) for t in dec_texts]
for with_bos in (False, True):
    ids = [([1] if with_bos else []) + r for r in dec_ref]
    ours = tu.decode_records(helper, [model], ids, "spm_decode")
    for t, i, o in zip(dec_texts, ids, ours):
        ck.same("decode(encode(text)) == text%s" % (" after BOS" if with_bos else ""), o, t.encode(), t)
        ck.same("decode == sentencepiece decode", o, sp.decode(i).encode(), t)
ck.done()

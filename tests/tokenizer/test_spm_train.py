#!/usr/bin/env python3
"""test_spm_train.py — sentencepiece options the LLaMA model does not use, on small BPE
models trained here with python sentencepiece 0.1.97: user-defined symbols,
remove_extra_whitespaces, no dummy prefix, no byte fallback (unknown characters, merged
when consecutive), treat_whitespace_as_suffix, and (when python protobuf is there to edit
the model) unused pieces, which sentencepiece merges and then splits again. Our ids must
equal sentencepiece's. Unigram models and normalizers with a precompiled charsmap must be
refused with one line naming the file.

usage: test_spm_train.py TOK_ENCODE"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokutil as tu

helper = sys.argv[1]
corpus, wiki = tu.shared_or_skip("data/tinystories/tinystories.txt", "data/wikitext2/wiki.test.raw")
try:
    import sentencepiece as spm
except ImportError:
    tu.skip("python sentencepiece is not installed")

ck = tu.Checker("test_spm_train")
tmp = tu.tmpdir()
edge = ["", " ", "   ", "Hello <custom> world @@x", "  two  spaces  ", " lead", "trail ", "a\tb\nc", "@@@@",
        "<custom><custom>", "x<custom>y", "naïve café 日本語 🙂", "Ωmega ü", "12345 67", "\x00", "é" * 5]
texts = edge + open(wiki, encoding="utf-8").read().split("\n")[:1500]

variants = {
    "userdef_bytefallback": dict(byte_fallback=True, user_defined_symbols=["<custom>", "@@"]),
    "no_bytefallback_keep_ws": dict(byte_fallback=False, remove_extra_whitespaces=False, add_dummy_prefix=False),
    "ws_suffix": dict(byte_fallback=True, treat_whitespace_as_suffix=True, remove_extra_whitespaces=False),
}
models = {}
for name, opts in variants.items():
    prefix = os.path.join(tmp, "spm_" + name)
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, model_type="bpe", vocab_size=800,
                                   normalization_rule_name="identity", minloglevel=2, **opts)
    models[name] = prefix + ".model"

try:  # unused pieces: mark some frequent merged pieces UNUSED in a copy of the first model
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    m.ParseFromString(open(models["userdef_bytefallback"], "rb").read())
    marked = 0
    for p in m.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) >= 2 and marked < 40:
            p.type = pb.ModelProto.SentencePiece.UNUSED
            marked += 1
    models["unused"] = os.path.join(tmp, "spm_unused.model")
    open(models["unused"], "wb").write(m.SerializeToString())
except ImportError:
    print("note: python protobuf missing; unused pieces not tested")

for name, path in models.items():
    sp = spm.SentencePieceProcessor(model_file=path)
    ours = tu.encode_records(helper, [path], texts, "spm_train_" + name)
    for t, o in zip(texts, ours):
        ck.same("%s vs sentencepiece" % name, o, sp.encode(t), t)
    print("%s: %d texts" % (name, len(texts)))

# refused: a unigram model, and the default nmt_nfkc normalizer (precompiled charsmap)
for name, opts in (("unigram", dict(model_type="unigram", normalization_rule_name="identity")),
                   ("nfkc", dict(model_type="bpe"))):
    prefix = os.path.join(tmp, "spm_refused_" + name)
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=800, minloglevel=2, **opts)
    r = subprocess.run([helper, prefix + ".model", "info"], capture_output=True)
    err = r.stderr.decode("utf-8", "replace")
    ck.ok("%s model refused with one line naming the file" % name,
          r.returncode == 1 and err.count("\n") == 1 and prefix + ".model" in err, err)
ck.done()

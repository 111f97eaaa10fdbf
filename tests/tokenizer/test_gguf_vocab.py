#!/usr/bin/env python3
"""test_gguf_vocab.py — the stories260K GGUF file's embedded "llama" vocabulary (read with
the gguf package, handed to pb_tok_from_vocab as a GGUF reader would) against the same
vocabulary as the llama2.c tok512.bin: identical ids on TinyStories text and edge cases,
and the greedy ids decode to the reference text.

usage: test_gguf_vocab.py TOK_ENCODE"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokutil as tu

helper = sys.argv[1]
gg, tok512, ids_txt, greedy, tiny = tu.shared_or_skip(
    "models/stories260K/stories260K.gguf", "models/stories260K/tok512.bin", "models/stories260K/stories260K.greedy_ids.txt",
    "models/stories260K/stories260K.greedy.txt", "data/tinystories/tinystories.txt")
try:
    import gguf
except ImportError:
    tu.skip("python gguf package is not installed")

r = gguf.GGUFReader(gg)


def field(name):
    f = r.fields[name]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    v = f.parts[f.data[0]]
    return bytes(v).decode("utf-8") if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]


spec = {"model": field("tokenizer.ggml.model"), "tokens": field("tokenizer.ggml.tokens"),
        "scores": field("tokenizer.ggml.scores"), "types": field("tokenizer.ggml.token_type"),
        "bos_id": field("tokenizer.ggml.bos_token_id"), "eos_id": field("tokenizer.ggml.eos_token_id"),
        "unk_id": field("tokenizer.ggml.unknown_token_id")}
spec_path = os.path.join(tu.tmpdir(), "stories260K_vocab.json")
json.dump(spec, open(spec_path, "w"))
ck = tu.Checker("test_gguf_vocab")
info, _ = tu.run(helper, ["--vocab-json", spec_path, "info"])
ck.same("GGUF vocab info (n bos eos kind add_bos)", info.split(), b"512 1 2 0 1".split())

texts = open(tiny, encoding="utf-8").read().split("\n\n")[:1500] + [
    "", " ", "Once upon a time", "  two  spaces ", "\n\nnew lines\n", "naïve café 日本 🙂", "<s> </s> <unk>", "x" * 500]
a = tu.encode_records(helper, ["--vocab-json", spec_path], texts, "gguf_vocab")
b = tu.encode_records(helper, ["--llama2c", "512", tok512], texts, "gguf_tok512")
for t, x, y in zip(texts, a, b):
    ck.same("GGUF vocab vs tok512.bin", x, y, t)
ids = [int(x) for x in open(ids_txt).read().split()]
dec = tu.decode_records(helper, ["--vocab-json", spec_path], [ids], "gguf_greedy")
ck.same("greedy ids decoded with the GGUF vocab", dec[0], open(greedy, "rb").read())
ck.done()

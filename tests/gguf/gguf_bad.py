"""gguf_bad.py — malformed GGUF files for test_gguf_synth.py.

A small byte-level GGUF writer (independent of gguf-py, so that each field can be made
wrong on purpose) builds a valid 1-layer model; every case changes one thing. Each case
must make pb_dump (tests/tools) exit non-zero with exactly one stderr line that starts with the file
name and names the problem (a substring per case), without crashing (the ASan build runs
the same cases). A control case checks that the unmodified file loads, so each failure is
caused by its one change. The prunebench CLI, when built, must exit 1 with one
"prunebench: error: " line for some of them."""
import json
import os
import struct
import subprocess

import numpy as np

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
       I64: "<q", F64: "<d"}
GG_F32, GG_I32, GG_Q8_0, GG_Q4_K = 0, 26, 8, 12


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def kv(key, vt, val, et=None):
    out = s(key) + struct.pack("<I", vt)
    if vt == STR:
        return out + s(val)
    if vt == ARR:
        body = b"".join(s(v) if et == STR else struct.pack(FMT[et], v) for v in val)
        return out + struct.pack("<IQ", et, len(val)) + body
    return out + struct.pack(FMT[vt], val)


DIM, HD, FFN, VOCAB = 32, 16, 32, 16


def base_model():
    """(kvs, tensors) of a valid tied 1-layer model: 2 heads, 1 kv head, all F32."""
    toks = ["<unk>", "<s>", "</s>"] + [f"\u2581w{i}" for i in range(VOCAB - 3)]
    kvs = [kv("general.architecture", STR, "llama"), kv("general.name", STR, "bad-test"),
           kv("llama.context_length", U32, 128), kv("llama.embedding_length", U32, DIM),
           kv("llama.block_count", U32, 1), kv("llama.feed_forward_length", U32, FFN),
           kv("llama.attention.head_count", U32, 2), kv("llama.attention.head_count_kv", U32, 1),
           kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), kv("llama.rope.dimension_count", U32, HD),
           kv("tokenizer.ggml.model", STR, "llama"), kv("tokenizer.ggml.tokens", ARR, toks, STR),
           kv("tokenizer.ggml.scores", ARR, [0.0] * VOCAB, F32),
           kv("tokenizer.ggml.token_type", ARR, [2, 3, 3] + [1] * (VOCAB - 3), I32),
           kv("tokenizer.ggml.bos_token_id", U32, 1), kv("tokenizer.ggml.eos_token_id", U32, 2)]
    rng = np.random.default_rng(7)
    shapes = [("token_embd.weight", [DIM, VOCAB]), ("output_norm.weight", [DIM]),
              ("blk.0.attn_norm.weight", [DIM]), ("blk.0.attn_q.weight", [DIM, 2 * HD]),
              ("blk.0.attn_k.weight", [DIM, HD]), ("blk.0.attn_v.weight", [DIM, HD]),
              ("blk.0.attn_output.weight", [2 * HD, DIM]), ("blk.0.ffn_norm.weight", [DIM]),
              ("blk.0.ffn_gate.weight", [DIM, FFN]), ("blk.0.ffn_up.weight", [DIM, FFN]),
              ("blk.0.ffn_down.weight", [FFN, DIM])]
    tensors = [{"name": n, "ne": ne, "type": GG_F32,
                "data": rng.standard_normal(int(np.prod(ne))).astype("<f4").tobytes()} for n, ne in shapes]
    return kvs, tensors


def build(kvs, tensors, magic=b"GGUF", version=3, n_tensors=None, n_kv=None, align=32, offsets=None):
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    infos, data, offs = b"", b"", []
    for t in tensors:
        data += b"\0" * (-len(data) % align)
        offs.append(len(data))
        data += t["data"]
    for i, t in enumerate(tensors):
        off = offs[i] if not offsets or t["name"] not in offsets else offsets[t["name"]]
        ne = t["ne"]
        infos += s(t["name"]) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", t["type"], off)
    body = head + b"".join(kvs) + infos
    return body + b"\0" * (-len(body) % align) + data


def replace_kv(kvs, key, new):
    """kvs with the entry for key replaced by new (bytes, or None to drop it)."""
    pre = s(key)
    out = [new if k.startswith(pre) else k for k in kvs]
    assert out != kvs or new is None and any(k.startswith(pre) for k in kvs), key
    return [k for k in out if k is not None]


def replace_t(tensors, name, **changes):
    out = [dict(t, **changes) if t["name"] == name else t for t in tensors]
    return [t for t in out if t.get("drop") is not True]


def cases():
    kvs, ts = base_model()
    ok = build(kvs, ts)
    raw_str = lambda key, n: s(key) + struct.pack("<IQ", STR, n) + b"bad"
    toks_kv = [k for k in kvs if k.startswith(s("tokenizer.ggml.tokens"))][0]
    # the tokens array with string 3's length made huge
    pos = len(s("tokenizer.ggml.tokens")) + 4 + 12
    for _ in range(3):
        pos += 8 + struct.unpack_from("<Q", toks_kv, pos)[0]
    bad_tok = toks_kv[:pos] + struct.pack("<Q", 1 << 40) + toks_kv[pos + 8:]
    ne_q = [DIM, 48]
    c = [
        ("wrong_magic", build(kvs, ts, magic=b"GGUX"), "not a GGUF file"),
        ("empty", b"", "not a GGUF file"),
        ("version1", build(kvs, ts, version=1), "GGUF version 1 is not supported"),
        ("version99", build(kvs, ts, version=99), "GGUF version 99 is not supported"),
        ("big_endian", build(kvs, ts, version=3 << 24), "big-endian"),
        ("absurd_n_tensors", build(kvs, ts, n_tensors=1 << 40), "header claims 1099511627776 tensors"),
        ("absurd_n_kv", build(kvs, ts, n_kv=1 << 40), "1099511627776 metadata keys"),
        ("string_past_end", build(replace_kv(kvs, "general.name", raw_str("general.name", 1 << 40)), ts),
         "metadata key 1 (general.name): string value of 1099511627776 bytes runs past end of file"),
        ("key_past_end", build([struct.pack("<Q", 1 << 33) + b"general"] + kvs[1:], ts),
         "metadata key 0: key of 8589934592 bytes runs past end of file"),
        ("array_count_past_end",
         build(replace_kv(kvs, "tokenizer.ggml.tokens", s("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARR, STR, 1 << 32)
                          + toks_kv[len(s("tokenizer.ggml.tokens")) + 16:]), ts),
         "metadata key 11 (tokenizer.ggml.tokens): array of 4294967296 strings runs past end of file"),
        ("array_string_past_end", build(replace_kv(kvs, "tokenizer.ggml.tokens", bad_tok), ts),
         "(tokenizer.ggml.tokens): string 3 of 16 runs past end of file"),
        ("nested_array", build(kvs + [s("x.nested") + struct.pack("<IIQ", ARR, ARR, 1)], ts), "nested"),
        ("unknown_value_type", build(kvs + [s("x.odd") + struct.pack("<I", 13) + b"\0" * 8], ts),
         "unknown value type 13"),
        ("duplicate_key", build(kvs + [kv("general.name", STR, "again")], ts), "metadata key general.name appears twice"),
        ("bad_alignment", build(kvs + [kv("general.alignment", U32, 48)], ts), "not a power of two"),
        ("offset_out_of_range", build(kvs, ts, offsets={"blk.0.ffn_down.weight": 1 << 20}),
         "tensor 10 (blk.0.ffn_down.weight): data [1048576, +4096) runs past end of file"),
        ("offset_misaligned", build(kvs, ts, offsets={"blk.0.attn_q.weight": 4}), "is not a multiple of the alignment"),
        ("overlap", build(kvs, ts, offsets={"blk.0.attn_k.weight": 2048 + 256 + 128}), "overlap"),
        ("unknown_type", build(kvs, replace_t(ts, "blk.0.ffn_norm.weight", type=99)), "unknown ggml tensor type 99"),
        ("unsupported_type", build(kvs, replace_t(ts, "output_norm.weight", type=GG_I32)),
         "tensor output_norm.weight has type I32 (26), which is not supported"),
        ("block_mismatch", build(kvs, replace_t(ts, "blk.0.ffn_up.weight", type=GG_Q4_K)),
         "row of 32 elements is not a multiple of the Q4_K block size 256"),
        ("dims_overflow", build(kvs, replace_t(ts, "blk.0.attn_v.weight", ne=[1 << 40, 1 << 40])), "overflow"),
        ("five_dims", build(kvs, replace_t(ts, "blk.0.attn_v.weight", ne=[DIM, HD, 1, 1, 1])), "5 dimensions"),
        ("zero_dims", build(kvs, replace_t(ts, "blk.0.attn_v.weight", ne=[])), "0 dimensions"),
        ("duplicate_tensor", build(kvs, ts + [dict(ts[1])]), "tensor output_norm.weight appears twice"),
        ("missing_tensor", build(kvs, replace_t(ts, "blk.0.ffn_up.weight", drop=True)),
         "tensor blk.0.ffn_up.weight is missing"),
        ("shape_vs_metadata", build(kvs, replace_t(ts, "blk.0.attn_q.weight", ne=ne_q,
                                                   data=b"\0" * (4 * DIM * 48))),
         "tensor blk.0.attn_q.weight has shape [32, 48, 1, 1] (ne[0] first), expected [32, 32]"),
        ("kv_heads_vs_tensor", build(replace_kv(kvs, "llama.attention.head_count_kv",
                                                kv("llama.attention.head_count_kv", U32, 2)), ts),
         "tensor blk.0.attn_k.weight has shape [32, 16, 1, 1] (ne[0] first), expected [32, 32]"),
        ("heads_not_multiple", build(replace_kv(kvs, "llama.attention.head_count_kv",
                                                kv("llama.attention.head_count_kv", U32, 3)), ts),
         "heads must be a multiple of kv heads"),
        ("unexpected_tensor", build(kvs, ts + [dict(ts[2], name="blk.1.attn_norm.weight")]),
         "unexpected tensor blk.1.attn_norm.weight"),
        ("architecture", build(replace_kv(kvs, "general.architecture", kv("general.architecture", STR, "qwen2")), ts),
         "architecture 'qwen2' is not supported"),
        ("partial_rotary", build(replace_kv(kvs, "llama.rope.dimension_count", kv("llama.rope.dimension_count", U32, 8)),
                                 ts), "partial rotary"),
        ("missing_key", build(replace_kv(kvs, "llama.embedding_length", None), ts),
         "metadata llama.embedding_length is missing"),
        ("key_type", build(replace_kv(kvs, "llama.block_count", kv("llama.block_count", STR, "1")), ts),
         "metadata llama.block_count has type string, expected an integer"),
        ("per_layer_count", build(replace_kv(kvs, "llama.feed_forward_length",
                                             kv("llama.feed_forward_length", ARR, [FFN, FFN], U32)), ts),
         "expected 1 integers (one per layer)"),
        ("rope_yarn", build(kvs + [kv("llama.rope.scaling.type", STR, "yarn")], ts), "rope scaling type 'yarn'"),
        ("tokenizer_model", build(replace_kv(kvs, "tokenizer.ggml.model", kv("tokenizer.ggml.model", STR, "bert")), ts),
         "tokenizer.ggml.model 'bert' is not supported"),
        ("scores_count", build(replace_kv(kvs, "tokenizer.ggml.scores", kv("tokenizer.ggml.scores", ARR, [0.0] * 3, F32)),
                               ts), "expected an array of 16 numbers"),
    ]
    return ok, c


def one_line_error(r, path):
    lines = r.stderr.splitlines()
    return r.returncode not in (0, -6, -11) and len(lines) == 1 and lines[0].startswith(path + ": "), lines


def run(dump, tmp, gguf_writer_file, custom_rope, check):
    ok, cs = cases()
    base = os.path.join(tmp, "bad_control.gguf")
    open(base, "wb").write(ok)
    r = subprocess.run([dump, "--tok", base], capture_output=True, text=True)
    check(r.returncode == 0 and r.stderr == "", f"bad-file control does not load: {r.stderr.strip()}")
    # valid variants: GGUF v2, and custom alignments (1 leaves F32 data unaligned: it must be
    # copied rather than mapped, which the UBSan build checks)
    kvs, ts = base_model()
    n_data = sum(len(t["data"]) for t in ts)
    align1 = [build(kvs + [kv("general.alignment", U32, 1), kv("x.pad", STR, "p" * pad)], ts, align=1)
              for pad in range(4)]
    align1 = [f for f in align1 if (len(f) - n_data) % 4 == 1][0]
    for name, data in (("v2", build(kvs, ts, version=2)), ("align1", align1),
                       ("align64", build(kvs + [kv("general.alignment", U32, 64)], ts, align=64))):
        p = os.path.join(tmp, f"good_{name}.gguf")
        open(p, "wb").write(data)
        out = os.path.join(tmp, f"good_{name}")
        os.makedirs(out, exist_ok=True)
        r = subprocess.run([dump, "--tok", p, "--tensors", out], capture_output=True, text=True)
        check(r.returncode == 0 and r.stderr == "", f"{name}: valid file does not load: {r.stderr.strip()}")
        if r.returncode == 0:
            j = json.load(open(os.path.join(out, "model.json")))
            check(j["n_maps"] == (0 if name == "align1" else 1), f"{name}: n_maps {j['n_maps']}")
    cs.append(("custom_rope_freqs", open(custom_rope, "rb").read(), "custom RoPE frequency factors are not supported"))
    paths = {}
    for name, data, want in cs:
        p = os.path.join(tmp, f"bad_{name}.gguf")
        open(p, "wb").write(data)
        paths[name] = p
        r = subprocess.run([dump, "--tok", p], capture_output=True, text=True)
        good, lines = one_line_error(r, p)
        check(good and want in lines[0], f"{name}: rc={r.returncode}, stderr={lines!r}, wanted one line "
                                         f"'{p}: ...{want}...'")

    # truncation: every prefix up to 64 bytes and every 997th byte, of this file and gguf-py's
    for src in (base, gguf_writer_file):
        data = open(src, "rb").read()
        need = required_length(data)
        cuts = sorted(set(range(64)) | set(range(997, len(data), 997)))
        p = os.path.join(tmp, "bad_truncated.gguf")
        n_fail = 0
        for cut in cuts:
            open(p, "wb").write(data[:cut])
            r = subprocess.run([dump, p], capture_output=True, text=True)
            if cut < need:
                good, lines = one_line_error(r, p)
                if not good:
                    n_fail += 1
                    check(False, f"{os.path.basename(src)} cut at {cut}: rc={r.returncode}, stderr={lines!r}")
            else:  # only trailing padding is missing: still a complete file
                check(r.returncode == 0, f"{os.path.basename(src)} cut at {cut} (>= {need}) fails: {r.stderr.strip()}")
        check(len(cuts) > 64, f"{src}: too few truncation points")

    pb_bin = os.environ.get("PB_BIN", "")
    if not os.path.exists(pb_bin):
        print(f"note: {pb_bin or 'PB_BIN'} not built; CLI error checks skipped")
        return
    for name in ("version99", "overlap", "missing_tensor", "shape_vs_metadata", "array_count_past_end"):
        r = subprocess.run([pb_bin, "info", paths[name]], capture_output=True, text=True)
        lines = r.stderr.splitlines()
        check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith("prunebench: error: " + paths[name]),
              f"prunebench info {name}: rc={r.returncode}, stderr={lines!r}")


def required_length(data):
    """End of the last tensor's data (header parsed with numpy-free struct reads)."""
    pos = 4
    version, nt, nkv = struct.unpack_from("<IQQ", data, pos)
    pos += 20
    align = 32

    def rd_str(p):
        n = struct.unpack_from("<Q", data, p)[0]
        return data[p + 8:p + 8 + n].decode(), p + 8 + n

    size = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}
    for _ in range(nkv):
        key, pos = rd_str(pos)
        vt = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if vt == STR:
            _, pos = rd_str(pos)
        elif vt == ARR:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(n):
                if et == STR:
                    _, pos = rd_str(pos)
                else:
                    pos += size[et]
        else:
            if key == "general.alignment":
                align = struct.unpack_from(FMT[vt], data, pos)[0]
            pos += size[vt]
    ends = []
    blk = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34)}
    for _ in range(nt):
        _, pos = rd_str(pos)
        nd = struct.unpack_from("<I", data, pos)[0]
        ne = struct.unpack_from(f"<{nd}Q", data, pos + 4)
        pos += 4 + 8 * nd
        tt, off = struct.unpack_from("<IQ", data, pos)
        pos += 12
        b, sz = blk[tt]
        ends.append(off + int(np.prod(ne)) // b * sz)
    start = (pos + align - 1) // align * align
    return start + max(ends)

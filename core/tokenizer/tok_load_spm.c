/* tok_load_spm.c — readers for the two binary SentencePiece sources: a sentencepiece
 * tokenizer.model (protobuf ModelProto, wire format parsed here) and a llama2.c
 * tokenizer.bin. Field numbers are those of sentencepiece_model.proto as shipped with the
 * python sentencepiece 0.1.97 package. Every size is checked against the bytes left. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p, *end, *base; /* base: start of the file, for offsets in messages */
    const char *path;
    pb_err *err;
} pbuf;

static int pb_fail(pbuf *b, const char *what) {
    return pb_err_set(b->err, "%s: corrupt or truncated sentencepiece model at byte %zu: %s", b->path,
                      (size_t)(b->p - b->base), what);
}

static int rd_varint(pbuf *b, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 70; s += 7) {
        if (b->p >= b->end) return pb_fail(b, "varint runs past the end");
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) { *v = r; return 0; }
    }
    return pb_fail(b, "varint longer than 10 bytes");
}

/* Reads a tag; wire type 2 also yields its payload as a sub-buffer. */
static int rd_field(pbuf *b, uint32_t *field, int *wire, uint64_t *val, pbuf *sub) {
    uint64_t tag;
    PB_TRY(rd_varint(b, &tag));
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    if (*field == 0 || tag >> 32) return pb_fail(b, "bad field number");
    switch (*wire) {
    case 0: return rd_varint(b, val);
    case 1:
        if (b->end - b->p < 8) return pb_fail(b, "64-bit field runs past the end");
        b->p += 8;
        return 0;
    case 5: {
        if (b->end - b->p < 4) return pb_fail(b, "32-bit field runs past the end");
        uint32_t u = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 | (uint32_t)b->p[3] << 24;
        b->p += 4;
        *val = u;
        return 0;
    }
    case 2: {
        uint64_t len;
        PB_TRY(rd_varint(b, &len));
        if (len > (uint64_t)(b->end - b->p)) return pb_fail(b, "length-delimited field runs past the end");
        *sub = (pbuf){b->p, b->p + len, b->base, b->path, b->err};
        b->p += len;
        return 0;
    }
    default: return pb_fail(b, "unsupported wire type");
    }
}

typedef struct {
    int model_type, unk_id, bos_id, eos_id;
    bool byte_fallback, ws_suffix, have_trainer, have_norm;
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    char norm_name[64];
    uint64_t charsmap_len;
} spm_specs;

static int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; } /* negatives are 10-byte varints */

static int parse_trainer(pbuf b, spm_specs *s) {
    s->have_trainer = true;
    while (b.p < b.end) {
        uint32_t f; int w; uint64_t v = 0; pbuf sub;
        PB_TRY(rd_field(&b, &f, &w, &v, &sub));
        if (w != 0) continue;
        switch (f) {
        case 3: s->model_type = as_int32(v); break;
        case 24: s->ws_suffix = v != 0; break;
        case 35: s->byte_fallback = v != 0; break;
        case 40: s->unk_id = as_int32(v); break;
        case 41: s->bos_id = as_int32(v); break;
        case 42: s->eos_id = as_int32(v); break;
        default: break;
        }
    }
    return 0;
}

static int parse_normalizer(pbuf b, spm_specs *s) {
    s->have_norm = true;
    while (b.p < b.end) {
        uint32_t f; int w; uint64_t v = 0; pbuf sub;
        PB_TRY(rd_field(&b, &f, &w, &v, &sub));
        if (w == 2 && f == 1) {
            size_t n = (size_t)(sub.end - sub.p);
            if (n >= sizeof s->norm_name) n = sizeof s->norm_name - 1;
            memcpy(s->norm_name, sub.p, n);
            s->norm_name[n] = 0;
        } else if (w == 2 && f == 2) {
            s->charsmap_len = (uint64_t)(sub.end - sub.p);
        } else if (w == 0) {
            if (f == 3) s->add_dummy_prefix = v != 0;
            if (f == 4) s->remove_extra_ws = v != 0;
            if (f == 5) s->escape_ws = v != 0;
        }
    }
    return 0;
}

static int parse_piece(pbuf b, pb_tokenizer *t, int id) {
    bool have = false;
    while (b.p < b.end) {
        uint32_t f; int w; uint64_t v = 0; pbuf sub;
        PB_TRY(rd_field(&b, &f, &w, &v, &sub));
        if (f == 1 && w == 2) {
            PB_TRY(tok_set_piece(t, id, (const char *)sub.p, (size_t)(sub.end - sub.p), b.err));
            have = true;
        } else if (f == 2 && w == 5) {
            uint32_t u = (uint32_t)v;
            memcpy(&t->score[id], &u, 4);
        } else if (f == 3 && w == 0) {
            t->type[id] = as_int32(v);
        }
    }
    if (!have) return pb_err_set(b.err, "%s: piece %d has no text", t->path, id);
    return 0;
}

int pb_tok_load_spm(const char *path, pb_tokenizer **out, pb_err *err) {
    *out = NULL;
    pb_mmap m;
    PB_TRY(pb_mmap_open(&m, path, false, err));
    pb_tokenizer *t = tok_new(path);
    if (!t) { pb_mmap_close(&m); return pb_err_set(err, "%s: out of memory", path); }
    spm_specs s = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, /* proto defaults */
                   .add_dummy_prefix = true, .remove_extra_ws = true, .escape_ws = true};
    pbuf top = {m.data, m.data + m.size, m.data, path, err};
    int n = 0, rc = 0;
    /* pass 1: count pieces and read the specs */
    while (rc == 0 && top.p < top.end) {
        uint32_t f; int w; uint64_t v = 0; pbuf sub;
        rc = rd_field(&top, &f, &w, &v, &sub);
        if (rc == 0 && w == 2 && f == 1) n++;
        if (rc == 0 && w == 2 && f == 2) rc = parse_trainer(sub, &s);
        if (rc == 0 && w == 2 && f == 3) rc = parse_normalizer(sub, &s);
    }
    /* sentencepiece always writes both specs after the pieces: a file without them was cut short */
    if (rc == 0 && (!s.have_trainer || !s.have_norm))
        rc = pb_err_set(err, "%s: not a complete sentencepiece model (no %s; truncated?)", path,
                        s.have_trainer ? "normalizer_spec" : "trainer_spec");
    if (rc == 0 && n == 0) rc = pb_err_set(err, "%s: sentencepiece model has no pieces", path);
    if (rc == 0 && s.model_type != 2) {
        static const char *names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        rc = pb_err_set(err, "%s: sentencepiece model_type %s is not supported (only BPE)", path,
                        s.model_type >= 1 && s.model_type <= 4 ? names[s.model_type] : "unknown");
    }
    if (rc == 0 && s.charsmap_len > 0)
        rc = pb_err_set(err, "%s: normalizer '%s' with a precompiled charsmap is not supported (only identity)",
                        path, s.norm_name);
    if (rc == 0) rc = tok_alloc_vocab(t, n, err);
    top.p = m.data;
    for (int id = 0; rc == 0 && top.p < top.end;) {
        uint32_t f; int w; uint64_t v = 0; pbuf sub;
        rc = rd_field(&top, &f, &w, &v, &sub);
        if (rc == 0 && w == 2 && f == 1) rc = parse_piece(sub, t, id++);
    }
    pb_mmap_close(&m);
    if (rc == 0) {
        t->kind = PB_TOK_SPM;
        t->alg = TOK_ALG_SCORE;
        t->byte_fallback = s.byte_fallback;
        t->add_dummy_prefix = s.add_dummy_prefix;
        t->remove_extra_ws = s.remove_extra_ws;
        t->escape_ws = s.escape_ws;
        t->ws_suffix = s.ws_suffix;
        t->bos = s.bos_id >= 0 && s.bos_id < n ? s.bos_id : -1;
        t->eos = s.eos_id >= 0 && s.eos_id < n ? s.eos_id : -1;
        t->add_bos_default = true; /* LLaMA's convention (HF LlamaTokenizer, llama.cpp) */
        rc = tok_spm_finish(t, true, err);
    }
    if (rc != 0) { pb_tok_free(t); return -1; }
    *out = t;
    return 0;
}

/* ---- llama2.c tokenizer.bin ---- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* vocab_size <= 0 reads every entry up to the end of the file (used by pb_tok_load). */
int pb_tok_load_llama2c(const char *path, int vocab_size, pb_tokenizer **out, pb_err *err) {
    *out = NULL;
    pb_mmap m;
    PB_TRY(pb_mmap_open(&m, path, false, err));
    pb_tokenizer *t = tok_new(path);
    if (!t) { pb_mmap_close(&m); return pb_err_set(err, "%s: out of memory", path); }
    int rc = 0;
    size_t pos = 4, n = 0;
    uint32_t max_len = m.size >= 4 ? le32(m.data) : 0, seen_max = 0;
    if (m.size < 4) rc = pb_err_set(err, "%s: too short for a llama2.c tokenizer (%zu bytes)", path, m.size);
    else if (max_len == 0 || max_len > 65536)
        rc = pb_err_set(err, "%s: not a llama2.c tokenizer (max_token_length %u)", path, max_len);
    /* pass 1 counts and checks entries; pass 2 stores them */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        pos = 4;
        for (n = 0; rc == 0 && (vocab_size > 0 ? n < (size_t)vocab_size : pos < m.size); n++) {
            if (m.size - pos < 8) {
                rc = pb_err_set(err, "%s: truncated at token %zu of %s (byte %zu)", path, n,
                                vocab_size > 0 ? "the vocabulary" : "the file", pos);
                break;
            }
            uint32_t len = le32(m.data + pos + 4);
            if (len > max_len || len > m.size - pos - 8) {
                rc = pb_err_set(err, "%s: token %zu has length %d (max_token_length %u, %zu bytes left)", path, n,
                                (int32_t)len, max_len, m.size - pos - 8);
                break;
            }
            if (pass == 1) {
                uint32_t u = le32(m.data + pos);
                memcpy(&t->score[n], &u, 4);
                /* llama2.c pieces carry real spaces where sentencepiece has U+2581 */
                tok_buf b = {0};
                for (uint32_t i = 0; rc == 0 && i < len; i++) {
                    char c = (char)m.data[pos + 8 + i];
                    rc = c == ' ' ? tok_buf_put(&b, TOK_SPACE, TOK_SPACE_LEN, err) : tok_buf_put(&b, &c, 1, err);
                }
                if (rc == 0) rc = tok_set_piece(t, (int)n, b.v ? b.v : "", b.n, err);
                free(b.v);
                if (rc == 0 && len == 0) rc = pb_err_set(err, "%s: token %zu is empty", path, n);
            }
            if (len > seen_max) seen_max = len;
            pos += 8 + len;
        }
        if (rc == 0 && pass == 0) {
            if (vocab_size <= 0 && seen_max != max_len)
                rc = pb_err_set(err, "%s: no token reaches max_token_length %u (longest %u): truncated?", path,
                                max_len, seen_max);
            else if (n < 3)
                rc = pb_err_set(err, "%s: only %zu tokens (need unk, bos, eos)", path, n);
            else
                rc = tok_alloc_vocab(t, (int)n, err);
        }
    }
    pb_mmap_close(&m);
    if (rc == 0) {
        t->kind = PB_TOK_SPM;
        t->alg = TOK_ALG_SCORE;
        t->type[0] = PB_TOKT_UNKNOWN;
        t->type[1] = t->type[2] = PB_TOKT_CONTROL;
        int nbytes = 0;
        for (int i = 3; i < t->n; i++)
            if (tok_byte_piece(t->piece[i], t->piece_len[i]) >= 0) { t->type[i] = PB_TOKT_BYTE; nbytes++; }
        t->byte_fallback = nbytes > 0;
        t->add_dummy_prefix = t->escape_ws = true; /* run.c prepends " " to non-empty text */
        t->remove_extra_ws = false;
        t->bos = 1;
        t->eos = 2;
        t->add_bos_default = true;
        rc = tok_spm_finish(t, false, err);
    }
    if (rc != 0) { pb_tok_free(t); return -1; }
    *out = t;
    return 0;
}

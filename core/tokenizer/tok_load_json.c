/* tok_load_json.c — HF tokenizer.json reader (cJSON): BPE model, added tokens, the
 * normalizers, pre-tokenizers and post-processor that LLaMA-family, LLaMA-3 and SmolLM2
 * tokenizers use. Anything else is refused with an error naming it, rather than encoded
 * differently from HF tokenizers. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pb_tokenizer *t;
    pb_err *err;
    bool saw_bytelevel, prepend_space;
} jctx;

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* -1 absent or null, 0 false, 1 true, -2 another type */
static int jbool(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return -1;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -2;
}

static bool jflag(const cJSON *o, const char *k, bool dflt) {
    int b = jbool(o, k);
    return b < 0 ? dflt : b == 1;
}

static int jid(const cJSON *v, int *id) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= (1 << 24) || v->valuedouble != (int)v->valuedouble)
        return -1;
    *id = (int)v->valuedouble;
    return 0;
}

static int do_normalizer(jctx *c, const cJSON *n) {
    pb_tokenizer *t = c->t;
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = jstr(n, "type");
    if (!ty) return pb_err_set(c->err, "%s: normalizer without a type", t->path);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(a)) return pb_err_set(c->err, "%s: Sequence normalizer without a list", t->path);
        cJSON_ArrayForEach(e, a) PB_TRY(do_normalizer(c, e));
        return 0;
    }
    if (t->n_norm == TOK_MAX_STEPS) return pb_err_set(c->err, "%s: too many normalizer steps", t->path);
    tok_norm *z = &t->norm[t->n_norm];
    if (!strcmp(ty, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) return pb_err_set(c->err, "%s: Prepend normalizer without 'prepend'", t->path);
        *z = (tok_norm){TOK_NORM_PREPEND, p, (uint32_t)strlen(p), "", 0};
        if (!strcmp(p, TOK_SPACE)) c->prepend_space = true;
    } else if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *s = pat ? jstr(pat, "String") : NULL, *content = jstr(n, "content");
        if (!s || !content)
            return pb_err_set(c->err, "%s: Replace normalizer needs a String pattern and a content (Regex patterns are not supported)", t->path);
        *z = (tok_norm){TOK_NORM_REPLACE, s, (uint32_t)strlen(s), content, (uint32_t)strlen(content)};
    } else {
        return pb_err_set(c->err, "%s: normalizer '%s' is not supported", t->path, ty);
    }
    t->n_norm++;
    return 0;
}

static int do_pre(jctx *c, const cJSON *p) {
    pb_tokenizer *t = c->t;
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = jstr(p, "type");
    if (!ty) return pb_err_set(c->err, "%s: pre_tokenizer without a type", t->path);
    if (c->saw_bytelevel)
        return pb_err_set(c->err, "%s: pre_tokenizer '%s' after ByteLevel is not supported", t->path, ty);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(a)) return pb_err_set(c->err, "%s: Sequence pre_tokenizer without a list", t->path);
        cJSON_ArrayForEach(e, a) PB_TRY(do_pre(c, e));
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        c->saw_bytelevel = true;
        const char *re = jflag(p, "use_regex", true) ? tok_pre_regex("gpt2") : NULL;
        return tok_pre_add(t, TOK_PRE_BYTELEVEL, re, re ? strlen(re) : 0, false, jflag(p, "add_prefix_space", true), 0,
                           c->err);
    }
    if (!strcmp(ty, "Digits")) {
        const char *re = tok_pre_regex(jflag(p, "individual_digits", false) ? "digits" : "digits+");
        return tok_pre_add(t, TOK_PRE_SPLIT, re, strlen(re), false, false, 0, c->err);
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *rs = pat ? jstr(pat, "Regex") : NULL, *ls = pat ? jstr(pat, "String") : NULL;
        const char *beh = jstr(p, "behavior");
        if (!rs && !ls) return pb_err_set(c->err, "%s: Split pre_tokenizer without a pattern", t->path);
        if (!beh || strcmp(beh, "Isolated") || jflag(p, "invert", false))
            return pb_err_set(c->err, "%s: Split pre_tokenizer with behavior '%s'%s is not supported (only Isolated)",
                              t->path, beh ? beh : "?", jflag(p, "invert", false) ? " inverted" : "");
        const char *s = rs ? rs : ls;
        return tok_pre_add(t, TOK_PRE_SPLIT, s, strlen(s), rs == NULL, false, 0, c->err);
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        if (!rep || strcmp(rep, TOK_SPACE) || jflag(p, "split", true) == true)
            return pb_err_set(c->err, "%s: Metaspace pre_tokenizer is supported only with replacement U+2581 and split=false", t->path);
        const char *sch = jstr(p, "prepend_scheme");
        int scheme = TOK_PREPEND_ALWAYS;
        if (sch) {
            if (!strcmp(sch, "first")) scheme = TOK_PREPEND_FIRST;
            else if (!strcmp(sch, "never")) scheme = TOK_PREPEND_NEVER;
            else if (strcmp(sch, "always")) return pb_err_set(c->err, "%s: Metaspace prepend_scheme '%s' unknown", t->path, sch);
        } else if (!jflag(p, "add_prefix_space", true)) {
            scheme = TOK_PREPEND_NEVER;
        }
        if (scheme != TOK_PREPEND_NEVER) c->prepend_space = true;
        t->escape_ws = true;
        return tok_pre_add(t, TOK_PRE_METASPACE, NULL, 0, false, false, scheme, c->err);
    }
    return pb_err_set(c->err, "%s: pre_tokenizer '%s' is not supported", t->path, ty);
}

/* TemplateProcessing whose single-sequence template starts with a special token: that
 * token is the BOS that HF adds by default. */
static int do_post(jctx *c, const cJSON *p) {
    pb_tokenizer *t = c->t;
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = jstr(p, "type");
    if (!ty) return pb_err_set(c->err, "%s: post_processor without a type", t->path);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        if (!cJSON_IsArray(a)) return pb_err_set(c->err, "%s: Sequence post_processor without a list", t->path);
        cJSON_ArrayForEach(e, a) PB_TRY(do_post(c, e));
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
    if (strcmp(ty, "TemplateProcessing")) return pb_err_set(c->err, "%s: post_processor '%s' is not supported", t->path, ty);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *first = cJSON_IsArray(single) ? cJSON_GetArrayItem(single, 0) : NULL;
    const cJSON *sp = first ? cJSON_GetObjectItemCaseSensitive(first, "SpecialToken") : NULL;
    if (!sp) return 0;
    const char *name = jstr(sp, "id");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    const cJSON *ent = name && st ? cJSON_GetObjectItemCaseSensitive(st, name) : NULL;
    const cJSON *ids = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
    int id = -1;
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || jid(cJSON_GetArrayItem(ids, 0), &id) || id >= t->n)
        return pb_err_set(c->err, "%s: TemplateProcessing special token '%s' has no valid id", t->path, name ? name : "?");
    t->bos = id;
    t->add_bos_default = true;
    return 0;
}

static int find_piece(const pb_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n; i++)
        if (t->piece[i] && (t->type[i] == PB_TOKT_CONTROL || t->type[i] == PB_TOKT_USER_DEFINED) && !strcmp(t->piece[i], s))
            return i;
    return -1;
}

/* Added tokens get their ids as tokenizers 0.19 gives them when it reads the file (the
 * "id" written there is not used): in file order, a token already in the model vocabulary
 * keeps that id, any other takes the next id after the model vocabulary and the added
 * tokens so far. */
static int do_added(jctx *c, const cJSON *added, int nv, int mv) {
    pb_tokenizer *t = c->t;
    pb_err *err = c->err;
    const cJSON *e;
    int na = cJSON_GetArraySize(added), maxa = -1, top = mv;
    if (na > 0) {
        t->added = pb_arena_alloc_n(&t->arena, (size_t)na, sizeof *t->added);
        PB_CHECK_ALLOC(t->added, err);
    }
    cJSON_ArrayForEach(e, added) {
        bool special = jflag(e, "special", false);
        const char *s = jstr(e, "content");
        size_t len = strlen(s);
        bool dup = len == 0;
        for (int k = 0; k < t->n_added && !dup; k++) dup = t->added[k].len == len && !memcmp(t->added[k].s, s, len);
        if (dup) continue;
        if (jflag(e, "single_word", false))
            return pb_err_set(err, "%s: added token '%.100s' has single_word=true (not supported)", t->path, s);
        int id = tok_map_get(t, &t->vocab, s, len);
        if (id < 0) {
            id = maxa < 0 ? nv : (maxa >= nv || nv == 0) ? maxa + 1 : nv;
            if (id >= t->n || t->piece[id])
                return pb_err_set(err, "%s: added token '%.100s' would take id %d, which the vocab already uses", t->path, s, id);
            PB_TRY(tok_set_piece(t, id, s, len, err));
        }
        if (id > maxa) maxa = id;
        if (id > top) top = id;
        tok_added *a = &t->added[t->n_added++];
        *a = (tok_added){id, t->piece[id], t->piece_len[id], NULL, 0, special, jflag(e, "lstrip", false),
                         jflag(e, "rstrip", false), jflag(e, "normalized", !special)};
        t->type[id] = special ? PB_TOKT_CONTROL : PB_TOKT_USER_DEFINED;
    }
    t->n = top + 1;
    return 0;
}

static int do_model(jctx *c, const cJSON *model, const cJSON *added) {
    pb_tokenizer *t = c->t;
    pb_err *err = c->err;
    const char *ty = jstr(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *e;
    if (ty ? strcmp(ty, "BPE") != 0 : !merges)
        return pb_err_set(err, "%s: model type '%s' is not supported (only BPE)", t->path, ty ? ty : "?");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return pb_err_set(err, "%s: BPE model needs a 'vocab' object and a 'merges' list", t->path);
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble == 0))
        return pb_err_set(err, "%s: BPE dropout is not supported", t->path);
    const char *csp = jstr(model, "continuing_subword_prefix"), *ews = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews))
        return pb_err_set(err, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", t->path);
    int nv = 0, mv = -1, na = 0, id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (jid(e, &id)) return pb_err_set(err, "%s: vocab entry '%.100s' has no valid id", t->path, e->string);
        nv++;
        if (id > mv) mv = id;
    }
    if (!cJSON_IsArray(added) && added && !cJSON_IsNull(added))
        return pb_err_set(err, "%s: added_tokens is not a list", t->path);
    cJSON_ArrayForEach(e, added) {
        if (!jstr(e, "content")) return pb_err_set(err, "%s: added token without a content", t->path);
        na++;
    }
    if (mv < 0) return pb_err_set(err, "%s: empty vocab", t->path);
    if (na > (1 << 20)) return pb_err_set(err, "%s: %d added tokens", t->path, na);
    PB_TRY(tok_alloc_vocab(t, mv + 1 + na, err)); /* added ids land at most na past the vocab */
    uint8_t *in_model = calloc((size_t)t->n, 1);
    PB_CHECK_ALLOC(in_model, err);
    int rc = 0;
    cJSON_ArrayForEach(e, vocab) {
        jid(e, &id);
        if (t->piece[id]) { rc = pb_err_set(err, "%s: vocab id %d used twice", t->path, id); break; }
        if ((rc = tok_set_piece(t, id, e->string, strlen(e->string), err)) != 0) break;
        in_model[id] = 1;
    }
    if (rc == 0) rc = tok_map_build(t, &t->vocab, NULL, 0, in_model, err) < 0 ? -1 : 0;
    free(in_model);
    PB_TRY(rc);
    PB_TRY(do_added(c, added, nv, mv));
    const char *unk = jstr(model, "unk_token");
    t->unk = unk ? tok_map_get(t, &t->vocab, unk, strlen(unk)) : -1;
    t->fuse_unk = jflag(model, "fuse_unk", false);
    t->byte_fallback = jflag(model, "byte_fallback", false);
    t->ignore_merges = jflag(model, "ignore_merges", false);
    PB_TRY(tok_merges_init(t, (size_t)cJSON_GetArraySize(merges), err));
    uint32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) { /* "a b": exactly one space, as tokenizers requires */
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) return pb_err_set(err, "%s: merge %u '%.100s' is not 'a b'", t->path, rank, s);
            a = s; al = (size_t)(sp - s); b = sp + 1; bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring; al = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring; bl = strlen(b);
        } else {
            return pb_err_set(err, "%s: merge %u is neither 'a b' nor [a, b]", t->path, rank);
        }
        PB_TRY(tok_merge_add(t, a, al, b, bl, rank, err));
        rank++;
    }
    return 0;
}

static int load_json(pb_tokenizer *t, const char *text, size_t size, pb_err *err) {
    cJSON *root = cJSON_ParseWithLength(text, size);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        size_t at = ep && ep >= text && ep <= text + size ? (size_t)(ep - text) : size;
        return pb_err_set(err, "%s: invalid JSON near byte %zu (truncated or corrupt tokenizer.json)", t->path, at);
    }
    jctx c = {t, err, false, false};
    int rc = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(model)) rc = pb_err_set(err, "%s: not a tokenizer.json (no 'model' object)", t->path);
    if (rc == 0) rc = do_normalizer(&c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (rc == 0) rc = do_pre(&c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (rc == 0) rc = do_model(&c, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (rc == 0) rc = do_post(&c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (rc == 0) {
        bool spm_like = c.prepend_space || t->byte_fallback;
        for (int k = 0; k < t->n_norm; k++)
            spm_like |= t->norm[k].kind == TOK_NORM_REPLACE && !strcmp(t->norm[k].b, TOK_SPACE);
        for (int k = 0; k < t->n_pre; k++) spm_like |= t->pre[k].kind == TOK_PRE_METASPACE;
        if (c.saw_bytelevel && spm_like)
            rc = pb_err_set(err, "%s: tokenizer mixes ByteLevel with SentencePiece-style steps (not supported)", t->path);
        else if (!c.saw_bytelevel && !spm_like)
            rc = pb_err_set(err, "%s: tokenizer is neither byte-level (ByteLevel pre_tokenizer) nor SentencePiece-like (U+2581 spaces, byte_fallback)", t->path);
        t->kind = c.saw_bytelevel ? PB_TOK_BYTELEVEL : PB_TOK_SPM;
        t->byte_level = c.saw_bytelevel;
        t->add_dummy_prefix = c.prepend_space;
    }
    if (rc == 0) rc = tok_rank_finish(t, err);
    if (rc == 0) {
        static const char *bos_names[] = {"<s>", "<|begin_of_text|>"};
        static const char *eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
        for (int k = 0; t->bos < 0 && k < 2; k++) t->bos = find_piece(t, bos_names[k]);
        for (int k = 0; t->eos < 0 && k < 3; k++) t->eos = find_piece(t, eos_names[k]);
    }
    /* the pieces and strings above point into the cJSON tree: copy what must outlive it */
    for (int k = 0; rc == 0 && k < t->n_norm; k++) {
        tok_norm *z = &t->norm[k];
        z->a = pb_arena_strndup(&t->arena, z->a, z->alen);
        z->b = pb_arena_strndup(&t->arena, z->b, z->blen);
        if (!z->a || !z->b) rc = pb_err_set(err, "%s: out of memory", t->path);
    }
    cJSON_Delete(root);
    return rc;
}

int pb_tok_load_hf_json(const char *path, pb_tokenizer **out, pb_err *err) {
    *out = NULL;
    char *text;
    size_t size;
    PB_TRY(pb_file_read_all(path, &text, &size, err));
    pb_tokenizer *t = tok_new(path);
    if (!t) { free(text); return pb_err_set(err, "%s: out of memory", path); }
    t->alg = TOK_ALG_RANK;
    int rc = load_json(t, text, size, err);
    free(text);
    if (rc != 0) { pb_tok_free(t); return -1; }
    *out = t;
    return 0;
}

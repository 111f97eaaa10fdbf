/* tok_vocab.c — tokenizers from a vocabulary handed over by a model reader (GGUF
 * tokenizer.ggml.*): "llama" = sentencepiece BPE with scores and token types, "gpt2" =
 * byte-level BPE with merges and a named pre-tokenizer. */
#include "tok_internal.h"

#include <string.h>

static int check_id(const pb_tok_vocab_spec *s, int id, const char *what, pb_err *err) {
    if (id < -1 || id >= s->n_tokens)
        return pb_err_set(err, "vocabulary: %s id %d out of range (%d tokens)", what, id, s->n_tokens);
    return 0;
}

static int copy_pieces(pb_tokenizer *t, const pb_tok_vocab_spec *s, pb_err *err) {
    PB_TRY(tok_alloc_vocab(t, s->n_tokens, err));
    for (int i = 0; i < s->n_tokens; i++) {
        const char *p = s->tokens[i];
        if (!p) return pb_err_set(err, "vocabulary: token %d is missing", i);
        int len = s->token_lens ? s->token_lens[i] : (int)strlen(p);
        if (len < 0) return pb_err_set(err, "vocabulary: token %d has length %d", i, len);
        PB_TRY(tok_set_piece(t, i, p, (size_t)len, err));
        if (s->scores) t->score[i] = s->scores[i];
        if (s->types) t->type[i] = s->types[i] ? s->types[i] : PB_TOKT_NORMAL; /* GGUF 0 = undefined */
    }
    return 0;
}

static int from_llama(pb_tokenizer *t, const pb_tok_vocab_spec *s, pb_err *err) {
    t->kind = PB_TOK_SPM;
    t->alg = TOK_ALG_SCORE;
    PB_TRY(copy_pieces(t, s, err));
    if (!s->types) { /* infer what the types would have said */
        for (int i = 0; i < t->n; i++)
            if (tok_byte_piece(t->piece[i], t->piece_len[i]) >= 0) t->type[i] = PB_TOKT_BYTE;
        if (s->bos_id >= 0) t->type[s->bos_id] = PB_TOKT_CONTROL;
        if (s->eos_id >= 0) t->type[s->eos_id] = PB_TOKT_CONTROL;
    }
    bool has_unk = false;
    for (int i = 0; i < t->n; i++) has_unk |= t->type[i] == PB_TOKT_UNKNOWN;
    if (!has_unk && s->unk_id >= 0) t->type[s->unk_id] = PB_TOKT_UNKNOWN;
    int nbytes = 0;
    for (int i = 0; i < t->n; i++) nbytes += t->type[i] == PB_TOKT_BYTE;
    t->byte_fallback = nbytes > 0; /* tok_spm_finish turns it off unless all 256 are there */
    t->add_dummy_prefix = s->add_space_prefix != 0;
    t->escape_ws = true;
    t->remove_extra_ws = false;
    t->bos = s->bos_id;
    t->eos = s->eos_id;
    t->add_bos_default = s->add_bos != 0;
    return tok_spm_finish(t, false, err);
}

static int from_gpt2(pb_tokenizer *t, const pb_tok_vocab_spec *s, pb_err *err) {
    t->kind = PB_TOK_BYTELEVEL;
    t->alg = TOK_ALG_RANK;
    t->byte_level = true;
    PB_TRY(copy_pieces(t, s, err));
    const char *pre = s->pre ? s->pre : "default";
    if (!strcmp(pre, "default") || !strcmp(pre, "gpt2")) {
        const char *re = tok_pre_regex("gpt2");
        PB_TRY(tok_pre_add(t, TOK_PRE_BYTELEVEL, re, strlen(re), false, false, 0, err));
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        const char *re = tok_pre_regex("llama3");
        PB_TRY(tok_pre_add(t, TOK_PRE_SPLIT, re, strlen(re), false, false, 0, err));
        PB_TRY(tok_pre_add(t, TOK_PRE_BYTELEVEL, NULL, 0, false, false, 0, err));
        t->ignore_merges = true; /* LLaMA-3's tokenizer.json sets it; llama.cpp does too */
    } else if (!strcmp(pre, "smollm")) {
        const char *d = tok_pre_regex("digits"), *re = tok_pre_regex("gpt2");
        PB_TRY(tok_pre_add(t, TOK_PRE_SPLIT, d, strlen(d), false, false, 0, err));
        PB_TRY(tok_pre_add(t, TOK_PRE_BYTELEVEL, re, strlen(re), false, false, 0, err));
    } else {
        return pb_err_set(err, "vocabulary: byte-level pre-tokenizer '%s' is not supported "
                               "(known: default, gpt2, llama-bpe, llama3, smollm)", pre);
    }
    /* Control and user-defined tokens are HF added tokens: not part of the BPE model's
     * vocabulary. User-defined ones are matched in the text as HF (and llama.cpp) do;
     * control ones are not (see tokenizer.h). */
    static const int32_t model_types[] = {PB_TOKT_NORMAL, PB_TOKT_UNKNOWN, PB_TOKT_BYTE, PB_TOKT_UNUSED};
    PB_TRY(tok_map_build(t, &t->vocab, model_types, 4, NULL, err) < 0 ? -1 : 0);
    if (s->n_merges < 0 || (s->n_merges > 0 && !s->merges))
        return pb_err_set(err, "vocabulary: bad merges list (%d)", s->n_merges);
    PB_TRY(tok_merges_init(t, (size_t)s->n_merges, err));
    for (int r = 0; r < s->n_merges; r++) {
        const char *m = s->merges[r], *sp = m ? strchr(m, ' ') : NULL;
        if (!sp || strchr(sp + 1, ' '))
            return pb_err_set(err, "vocabulary: merge %d '%.100s' is not 'a b'", r, m ? m : "(null)");
        PB_TRY(tok_merge_add(t, m, (size_t)(sp - m), sp + 1, strlen(sp + 1), (uint32_t)r, err));
    }
    int nu = 0;
    for (int i = 0; i < t->n; i++) nu += t->type[i] == PB_TOKT_USER_DEFINED;
    if (nu) {
        t->added = pb_arena_alloc_n(&t->arena, (size_t)nu, sizeof *t->added);
        PB_CHECK_ALLOC(t->added, err);
        for (int i = 0; i < t->n; i++)
            if (t->type[i] == PB_TOKT_USER_DEFINED)
                t->added[t->n_added++] = (tok_added){i, t->piece[i], t->piece_len[i], NULL, 0, false, false, false, false};
    }
    t->unk = s->unk_id;
    t->bos = s->bos_id;
    t->eos = s->eos_id;
    t->add_bos_default = s->add_bos == 1;
    return tok_rank_finish(t, err);
}

int pb_tok_from_vocab(const pb_tok_vocab_spec *s, pb_tokenizer **out, pb_err *err) {
    *out = NULL;
    if (!s || !s->model || !s->tokens || s->n_tokens <= 0)
        return pb_err_set(err, "vocabulary: no tokens");
    PB_TRY(check_id(s, s->bos_id, "bos", err));
    PB_TRY(check_id(s, s->eos_id, "eos", err));
    PB_TRY(check_id(s, s->unk_id, "unk", err));
    bool llama = !strcmp(s->model, "llama"), gpt2 = !strcmp(s->model, "gpt2");
    if (!llama && !gpt2)
        return pb_err_set(err, "vocabulary: tokenizer model '%s' is not supported (only llama, gpt2)", s->model);
    pb_tokenizer *t = tok_new(NULL);
    if (!t) return pb_err_set(err, "vocabulary: out of memory");
    if ((llama ? from_llama(t, s, err) : from_gpt2(t, s, err)) != 0) {
        pb_tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

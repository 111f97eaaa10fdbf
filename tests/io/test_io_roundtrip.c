/* test_io_roundtrip.c — pb_hf_save then pb_model_load gives back the same model: bit-exact
 * for F32, and exactly the round-to-nearest-even value for F16/BF16 (widening back to fp32
 * is exact, so equality, not a tolerance, is the right check). Also: F32 tensors are used
 * in place from the map (and edits never reach the file), misaligned F32 data is copied,
 * sharding, tied heads, non-uniform/pruned layers, and failed saves leave nothing behind.
 *
 * usage: io_roundtrip CASE   (see the table at the bottom) */
#include "io_testutil.h"
#include "safetensors.h"

static pb_config base_cfg(int n_layers, bool tied) {
    pb_config c;
    memset(&c, 0, sizeof c);
    c.dim = 16, c.n_layers = n_layers, c.vocab_size = 40, c.max_seq_len = 256;
    c.norm_eps = 1e-5f, c.rope_theta = 500000.0f, c.tied_embeddings = tied;
    c.bos_id = 1, c.eos_id = -1;
    c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.ffn_dim = 24;
    strcpy(c.arch, "llama");
    return c;
}

static const rm_layer uniform3[] = {{4, 2, 4, 24, NULL}, {4, 2, 4, 24, NULL}, {4, 2, 4, 24, NULL}};

static pb_model *load_ok(const char *dir) {
    pb_err err = {0};
    pb_model *m = NULL;
    REQUIRE(pb_model_load(dir, NULL, &m, NULL, &err) == 0, "%s", err.msg);
    CHECK(!strcmp(m->format, "hf"));
    CHECK(m->path && !strcmp(m->path, dir));
    return m;
}

static void save_ok(const pb_model *m, const char *dir, pb_save_dtype dt, size_t shard) {
    pb_err err = {0};
    pb_save_opts o = {dt, NULL, shard};
    REQUIRE(pb_hf_save(m, dir, &o, &err) == 0, "%s", err.msg);
}

static char *slurp(const char *dir, const char *name) {
    char p[4096];
    pb_test_join(p, sizeof p, dir, name);
    char *t = NULL;
    pb_err err;
    return pb_file_read_all(p, &t, NULL, &err) == 0 ? t : NULL;
}

static bool exists(const char *dir, const char *name) {
    char p[4096];
    pb_test_join(p, sizeof p, dir, name);
    return pb_file_exists(p);
}

/* Counts directory entries whose name contains s. */
static int count_named(const char *dir, const char *s) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, s) != NULL;
    closedir(d);
    return n;
}

/* Every tensor of m must (want_mapped) or must not lie in one of its maps. */
static void check_mapping(const pb_model *m, bool want_mapped) {
    size_t d = (size_t)m->cfg.dim, V = (size_t)m->cfg.vocab_size;
    CHECK(pb_test_in_maps(m, m->tok_emb, V * d) == want_mapped);
    CHECK(pb_test_in_maps(m, m->final_norm, d) == want_mapped);
    CHECK(pb_test_in_maps(m, m->lm_head, V * d) == want_mapped);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        size_t q = (size_t)L->n_heads * L->head_dim, f = (size_t)L->ffn_dim;
        if (L->has_attn) CHECK_MSG(pb_test_in_maps(m, L->wq, q * d) == want_mapped, "layer %d wq", l);
        if (L->has_mlp) CHECK_MSG(pb_test_in_maps(m, L->w_down, f * d) == want_mapped, "layer %d w_down", l);
    }
    if (!want_mapped) CHECK(m->n_maps == 0); /* unused maps are closed, not kept */
}

static void roundtrip(const char *name, const pb_model *m, pb_save_dtype dt, size_t shard) {
    char dir[4096];
    pb_test_fresh_dir(dir, sizeof dir, name);
    save_ok(m, dir, dt, shard);
    pb_model *r = load_ok(dir);
    CHECK_MSG(io_same_model(m, r, dt) == 0, "%s", name);
    check_mapping(r, dt == PB_DTYPE_F32);
    CHECK(count_named(dir, "pbtmp") == 0);
    pb_model_free(r);
}

static void case_uniform(pb_save_dtype dt, const char *name) {
    pb_config c = base_cfg(3, false);
    c.rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 8192};
    pb_model *m = rm_build(&c, uniform3, 1, RM_EXTREME);
    roundtrip(name, m, dt, 0);
    char dir[4096];
    pb_test_join(dir, sizeof dir, pb_test_tmp(), name);
    char *cfg = slurp(dir, "config.json");
    REQUIRE(cfg, "no config.json");
    CHECK(!strstr(cfg, "prunebench_layers"));  /* uniform: a plain LlamaConfig */
    CHECK(strstr(cfg, "\"rms_norm_eps\": 1e-05") || strstr(cfg, "\"rms_norm_eps\":\t1e-05"));
    CHECK(strstr(cfg, "LlamaForCausalLM"));
    free(cfg);
    pb_model_free(m);
}

static void case_f32(void) { case_uniform(PB_DTYPE_F32, "io_rt_f32"); }
static void case_f16(void) { case_uniform(PB_DTYPE_F16, "io_rt_f16"); }
static void case_bf16(void) { case_uniform(PB_DTYPE_BF16, "io_rt_bf16"); }

static void case_tied(void) {
    pb_config c = base_cfg(3, true);
    pb_model *m = rm_build(&c, uniform3, 2, RM_EXTREME);
    const pb_save_dtype dts[] = {PB_DTYPE_F32, PB_DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        char dir[4096];
        pb_test_fresh_dir(dir, sizeof dir, "io_rt_tied");
        save_ok(m, dir, dts[i], 0);
        char p[4096];
        pb_test_join(p, sizeof p, dir, "model.safetensors");
        pb_st_file f;
        pb_err err;
        REQUIRE(pb_st_open(&f, p, &err) == 0, "%s", err.msg);
        CHECK(pb_st_find(&f, "lm_head.weight") == NULL); /* a tied model writes no head */
        CHECK(pb_st_find(&f, "model.embed_tokens.weight") != NULL);
        pb_st_close(&f);
        pb_model *r = load_ok(dir);
        CHECK(r->lm_head == r->tok_emb);
        CHECK(io_same_model(m, r, dts[i]) == 0);
        pb_model_free(r);
    }
    pb_model_free(m);
}

static void case_sharded(void) {
    pb_config c = base_cfg(3, false);
    pb_model *m = rm_build(&c, uniform3, 3, RM_EXTREME);
    char dir[4096];
    pb_test_fresh_dir(dir, sizeof dir, "io_rt_sharded");
    save_ok(m, dir, PB_DTYPE_F32, 0); /* a stale single file that the sharded save must remove */
    CHECK(exists(dir, "model.safetensors"));
    save_ok(m, dir, PB_DTYPE_F32, 3000);
    CHECK(!exists(dir, "model.safetensors"));
    CHECK(exists(dir, "model.safetensors.index.json"));
    CHECK(count_named(dir, "-of-") >= 3);
    pb_model *r = load_ok(dir);
    CHECK(io_same_model(m, r, PB_DTYPE_F32) == 0);
    check_mapping(r, true);
    CHECK(r->n_maps >= 3);
    pb_model_free(r);
    save_ok(m, dir, PB_DTYPE_F16, 3000);
    r = load_ok(dir);
    CHECK(io_same_model(m, r, PB_DTYPE_F16) == 0);
    pb_model_free(r);
    save_ok(m, dir, PB_DTYPE_BF16, 0); /* back to one file: the stale index goes */
    CHECK(!exists(dir, "model.safetensors.index.json"));
    r = load_ok(dir);
    CHECK(io_same_model(m, r, PB_DTYPE_BF16) == 0);
    pb_model_free(r);
    pb_model_free(m);
}

static void nonuniform(const char *name, const rm_layer *layers, int n) {
    pb_config c = base_cfg(n, false);
    pb_model *m = rm_build(&c, layers, 4, RM_EXTREME);
    const pb_save_dtype dts[] = {PB_DTYPE_F32, PB_DTYPE_F16, PB_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        roundtrip(name, m, dts[i], i == 2 ? 2000 : 0);
        char dir[4096];
        pb_test_join(dir, sizeof dir, pb_test_tmp(), name);
        char *cfg = slurp(dir, "config.json");
        REQUIRE(cfg, "no config.json");
        CHECK_MSG(strstr(cfg, "prunebench_layers") != NULL, "%s: config.json lacks prunebench_layers", name);
        free(cfg);
    }
    pb_model_free(m);
}

static void case_nonuniform(void) {
    const rm_layer L[] = {{4, 2, 4, 24, NULL}, {3, 1, 4, 10, NULL}, {2, 2, 6, 7, NULL}, {4, 4, 4, 1, NULL}};
    nonuniform("io_rt_nonuniform", L, 4);
}

static void case_no_attn(void) {
    const rm_layer L[] = {{4, 2, 4, 24, NULL}, {0, 0, 4, 24, NULL}, {4, 2, 4, 24, NULL}};
    nonuniform("io_rt_no_attn", L, 3);
}

static void case_no_mlp(void) {
    const rm_layer L[] = {{4, 2, 4, 0, NULL}, {4, 2, 4, 24, NULL}, {0, 0, 4, 0, NULL}};
    nonuniform("io_rt_no_mlp", L, 3);
}

static void case_flap_bias(void) {
    const rm_layer L[] = {{4, 2, 4, 24, "oD"}, {2, 2, 4, 12, "o"}, {4, 2, 4, 24, "D"}, {4, 2, 4, 20, NULL}};
    nonuniform("io_rt_flap_bias", L, 4);
}

static void case_full_bias(void) {
    const rm_layer L[] = {{4, 2, 4, 24, "qkvoGUD"}, {4, 2, 4, 24, "qkvoGUD"}};
    pb_config c = base_cfg(2, false);
    pb_model *m = rm_build(&c, L, 5, RM_EXTREME);
    roundtrip("io_rt_full_bias", m, PB_DTYPE_F32, 0);
    char dir[4096];
    pb_test_join(dir, sizeof dir, pb_test_tmp(), "io_rt_full_bias");
    char *cfg = slurp(dir, "config.json");
    REQUIRE(cfg, "no config.json");
    /* expressible as a plain LlamaConfig */
    CHECK(!strstr(cfg, "prunebench_layers"));
    CHECK(strstr(cfg, "\"attention_bias\": true") || strstr(cfg, "\"attention_bias\":\ttrue"));
    CHECK(strstr(cfg, "\"mlp_bias\": true") || strstr(cfg, "\"mlp_bias\":\ttrue"));
    free(cfg);
    pb_model_free(m);
}

/* In-place edits of a mapped tensor stay private; saving over the folder the model was
 * loaded from (while its maps point into the old file) works. */
static void case_cow(void) {
    pb_config c = base_cfg(2, false);
    pb_model *m = rm_build(&c, uniform3, 6, RM_EXTREME);
    char dir[4096];
    pb_test_fresh_dir(dir, sizeof dir, "io_rt_cow");
    save_ok(m, dir, PB_DTYPE_F32, 0);
    pb_model *r = load_ok(dir);
    REQUIRE(pb_test_in_maps(r, r->layers[1].wq, 16), "wq not mapped");
    float orig = r->layers[1].wq[3];
    r->layers[1].wq[3] = 12345.0f;
    r->tok_emb[0] = -777.0f;
    pb_model *r2 = load_ok(dir);
    CHECK(r2->layers[1].wq[3] == orig);
    CHECK(r2->tok_emb[0] == m->tok_emb[0]);
    pb_model_free(r2);
    save_ok(r, dir, PB_DTYPE_F32, 0); /* overwrite the source of r's maps */
    r2 = load_ok(dir);
    CHECK(r2->layers[1].wq[3] == 12345.0f);
    CHECK(r2->tok_emb[0] == -777.0f);
    CHECK(r2->layers[0].wk[5] == m->layers[0].wk[5]);
    pb_model_free(r2);
    pb_model_free(r);
    pb_model_free(m);
}

/* F32 data at an offset that is not a multiple of 4 is legal; it must be copied, not mapped. */
static void case_misaligned(void) {
    pb_config c = base_cfg(2, false);
    pb_model *m = rm_build(&c, uniform3, 7, RM_EXTREME);
    char dir[4096], p[4096];
    pb_test_fresh_dir(dir, sizeof dir, "io_rt_misaligned");
    save_ok(m, dir, PB_DTYPE_F32, 0);
    pb_test_join(p, sizeof p, dir, "model.safetensors");
    char *buf = NULL;
    size_t n = 0;
    pb_err err;
    REQUIRE(pb_file_read_all(p, &buf, &n, &err) == 0, "%s", err.msg);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | (uint8_t)buf[i];
    char *out = malloc(n + 2);
    REQUIRE(out, "oom");
    uint64_t h2 = h + 2; /* two more spaces of header padding shift the data by 2 bytes */
    for (int i = 0; i < 8; i++) out[i] = (char)(h2 >> (8 * i));
    memcpy(out + 8, buf + 8, h);
    out[8 + h] = ' ', out[9 + h] = ' ';
    memcpy(out + 10 + h, buf + 8 + h, n - 8 - h);
    pb_test_write_file(p, out, n + 2);
    free(out);
    free(buf);
    pb_model *r = load_ok(dir);
    CHECK(io_same_model(m, r, PB_DTYPE_F32) == 0);
    check_mapping(r, false);
    pb_model_free(r);
    pb_model_free(m);
}

/* A failed save leaves no folder (when it created it) and no temporary files, and leaves an
 * existing folder's files untouched. */
static void case_save_failure(void) {
    pb_config c = base_cfg(2, false);
    pb_model *m = rm_build(&c, uniform3, 8, RM_EXTREME);
    char dir[4096];
    pb_err err = {0};
    pb_test_join(dir, sizeof dir, pb_test_tmp(), "io_rt_fail_new");
    pb_test_rm_rf(dir);
    pb_save_opts o = {PB_DTYPE_F32, "/nonexistent/tokenizer/folder", 0};
    CHECK(pb_hf_save(m, dir, &o, &err) != 0);
    CHECK(strstr(err.msg, "/nonexistent/tokenizer/folder") != NULL);
    CHECK(!pb_is_dir(dir));

    pb_test_fresh_dir(dir, sizeof dir, "io_rt_fail_existing");
    save_ok(m, dir, PB_DTYPE_F32, 0);
    char p[4096], *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    pb_test_join(p, sizeof p, dir, "model.safetensors");
    REQUIRE(pb_file_read_all(p, &before, &nb, &err) == 0, "%s", err.msg);
    pb_model *m2 = rm_build(&c, uniform3, 9, RM_EXTREME);
    o.dtype = PB_DTYPE_BF16;
    CHECK(pb_hf_save(m2, dir, &o, &err) != 0);
    REQUIRE(pb_file_read_all(p, &after, &na, &err) == 0, "%s", err.msg);
    CHECK(nb == na && !memcmp(before, after, nb));
    CHECK(count_named(dir, "pbtmp") == 0);
    pb_model *r = load_ok(dir);
    CHECK(io_same_model(m, r, PB_DTYPE_F32) == 0);
    pb_model_free(r);
    free(before);
    free(after);
    pb_model_free(m2);
    pb_model_free(m);
}

static void case_tokenizer_copy(void) {
    pb_config c = base_cfg(1, false);
    pb_model *m = rm_build(&c, uniform3, 10, RM_EXTREME);
    char src[4096], dir[4096], p[4096];
    pb_test_fresh_dir(src, sizeof src, "io_rt_tok_src");
    const char spm[] = "not really a sentencepiece model \x01\x02\x00\x03";
    const char tc[] = "{\"add_bos_token\": true}";
    pb_test_join(p, sizeof p, src, "tokenizer.model");
    pb_test_write_file(p, spm, sizeof spm);
    pb_test_join(p, sizeof p, src, "tokenizer_config.json");
    pb_test_write_file(p, tc, sizeof tc - 1);
    pb_test_fresh_dir(dir, sizeof dir, "io_rt_tok_dst");
    pb_save_opts o = {PB_DTYPE_F32, src, 0};
    pb_err err = {0};
    REQUIRE(pb_hf_save(m, dir, &o, &err) == 0, "%s", err.msg);
    pb_test_join(p, sizeof p, dir, "tokenizer.model");
    char *t = NULL;
    size_t n = 0;
    CHECK(pb_file_read_all(p, &t, &n, &err) == 0 && n == sizeof spm && !memcmp(t, spm, n));
    free(t);
    char *j = slurp(dir, "tokenizer_config.json");
    CHECK(j && !strcmp(j, tc));
    free(j);
    CHECK(!exists(dir, "tokenizer.json"));
    pb_model_free(m);
}

/* Tokenizer discovery: tokenizer.model first, then tokenizer.json, opts->tokenizer_path
 * overriding both, none -> NULL; a broken one fails the load naming the file. */
static void case_tokenizer_load(void) {
    const char *shared = pb_test_shared_or_skip();
    char spm[4096], dir[4096], p[4096];
    pb_test_join(spm, sizeof spm, shared, "data/tokenizer/tokenizer.model");
    REQUIRE(pb_file_exists(spm), "%s missing", spm);
    pb_config c = base_cfg(1, false);
    pb_model *m = rm_build(&c, uniform3, 11, RM_EXTREME), *r = NULL;
    pb_tokenizer *tok = NULL;
    pb_err err = {0};
    pb_test_fresh_dir(dir, sizeof dir, "io_rt_tok_load");
    save_ok(m, dir, PB_DTYPE_F32, 0);

    /* none beside the model: no error, *tok NULL */
    tok = (pb_tokenizer *)1;
    REQUIRE(pb_model_load(dir, NULL, &r, &tok, &err) == 0, "%s", err.msg);
    CHECK(tok == NULL);
    pb_model_free(r);

    /* explicit path */
    pb_load_opts lo = {spm};
    REQUIRE(pb_model_load(dir, &lo, &r, &tok, &err) == 0, "%s", err.msg);
    CHECK(tok && pb_tok_vocab_size(tok) == 32000);
    pb_tok_free(tok);
    pb_model_free(r);

    /* broken tokenizer.json only: it is the one tried, and the load fails naming it */
    pb_test_join(p, sizeof p, dir, "tokenizer.json");
    pb_test_write_file(p, "{not json", 9);
    r = (pb_model *)1;
    CHECK(pb_model_load(dir, NULL, &r, &tok, &err) != 0);
    CHECK(r == NULL && tok == NULL);
    CHECK_MSG(strstr(err.msg, "tokenizer.json") != NULL, "%s", err.msg);
    /* ... but a caller that wants no tokenizer does not read it */
    REQUIRE(pb_model_load(dir, NULL, &r, NULL, &err) == 0, "%s", err.msg);
    pb_model_free(r);

    /* tokenizer.model (here a link to the shared file, read in place) wins over tokenizer.json */
    pb_test_join(p, sizeof p, dir, "tokenizer.model");
    REQUIRE(symlink(spm, p) == 0, "symlink %s", p);
    REQUIRE(pb_model_load(dir, NULL, &r, &tok, &err) == 0, "%s", err.msg);
    CHECK(tok && pb_tok_vocab_size(tok) == 32000 && pb_tok_kind_of(tok) == PB_TOK_SPM);
    pb_tok_free(tok);
    pb_model_free(r);
    pb_model_free(m);
}

/* pb_model_load picks the reader by content: GGUF magic -> gguf, other files -> llama2.c
 * (the real stories260K files; a GGUF file under a .bin name still loads as GGUF). */
static void case_dispatch(void) {
    const char *shared = pb_test_shared_or_skip();
    char gguf[4096], bin[4096], renamed[4096];
    pb_test_join(gguf, sizeof gguf, shared, "models/stories260K/stories260K.gguf");
    pb_test_join(bin, sizeof bin, shared, "models/stories260K/stories260K.bin");
    pb_test_join(renamed, sizeof renamed, pb_test_tmp(), "io_rt_gguf_renamed.bin");
    unlink(renamed);
    REQUIRE(symlink(gguf, renamed) == 0, "symlink %s", renamed);
    const char *paths[] = {gguf, bin, renamed}, *formats[] = {"gguf", "llama2c", "gguf"};
    for (int i = 0; i < 3; i++) {
        pb_err err = {0};
        pb_model *m = NULL;
        REQUIRE(pb_model_load(paths[i], NULL, &m, NULL, &err) == 0, "%s", err.msg);
        CHECK_MSG(!strcmp(m->format, formats[i]), "%s loaded as %s", paths[i], m->format);
        CHECK(m->cfg.dim == 64 && m->cfg.n_layers == 5);
        pb_model_free(m);
    }
}

static void case_missing_path(void) {
    pb_err err = {0};
    pb_model *m = (pb_model *)1;
    char p[4096];
    pb_test_join(p, sizeof p, pb_test_tmp(), "io_no_such_model");
    CHECK(pb_model_load(p, NULL, &m, NULL, &err) != 0);
    CHECK(m == NULL);
    char want[4200];
    snprintf(want, sizeof want, "%s: no such file or directory", p);
    CHECK_MSG(!strcmp(err.msg, want), "got \"%s\"", err.msg);
}

static const struct { const char *name; void (*fn)(void); } cases[] = {
    {"f32", case_f32}, {"f16", case_f16}, {"bf16", case_bf16}, {"tied", case_tied}, {"sharded", case_sharded},
    {"nonuniform", case_nonuniform}, {"no_attn", case_no_attn}, {"no_mlp", case_no_mlp},
    {"flap_bias", case_flap_bias}, {"full_bias", case_full_bias}, {"cow", case_cow},
    {"misaligned", case_misaligned}, {"save_failure", case_save_failure}, {"tokenizer_copy", case_tokenizer_copy},
    {"tokenizer_load", case_tokenizer_load}, {"dispatch", case_dispatch}, {"missing_path", case_missing_path},
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (argc < 2 || !strcmp(argv[1], cases[i].name)) {
            cases[i].fn();
            ran++;
        }
    REQUIRE(ran > 0, "unknown case %s", argc > 1 ? argv[1] : "");
    return pb_test_done(argc > 1 ? argv[1] : "io_roundtrip");
}

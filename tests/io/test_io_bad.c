/* test_io_bad.c — malformed HF folders: each case builds one broken folder and checks that
 * pb_model_load fails (no crash, also under ASan/UBSan) with one line naming the file and the
 * problem. When the prunebench CLI is built (PB_BIN), `prunebench info DIR` must exit 1
 * with exactly one stderr line "prunebench: error: ..." naming the file.
 *
 * usage: io_bad CASE   (see the table at the bottom; "all" runs every case) */
#include "io_testutil.h"

#include <sys/wait.h>

/* ---- a tiny valid folder: dim 4, 1 layer, 2 heads, 1 KV head, head_dim 2, FFN 6, vocab 8 */

typedef struct {
    char name[96];
    char dtype[8];
    int ndim;
    long long shape[2];
    size_t begin, end;
} ent;

typedef struct {
    ent e[32];
    int n;
} ents;

static void add(ents *s, const char *name, long long r, long long c) {
    ent *e = &s->e[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    strcpy(e->dtype, "F32");
    e->ndim = c < 0 ? 1 : 2;
    e->shape[0] = r, e->shape[1] = c;
}

static void std_ents(ents *s) {
    s->n = 0;
    add(s, "model.embed_tokens.weight", 8, 4);
    add(s, "model.layers.0.input_layernorm.weight", 4, -1);
    add(s, "model.layers.0.self_attn.q_proj.weight", 4, 4);
    add(s, "model.layers.0.self_attn.k_proj.weight", 2, 4);
    add(s, "model.layers.0.self_attn.v_proj.weight", 2, 4);
    add(s, "model.layers.0.self_attn.o_proj.weight", 4, 4);
    add(s, "model.layers.0.post_attention_layernorm.weight", 4, -1);
    add(s, "model.layers.0.mlp.gate_proj.weight", 6, 4);
    add(s, "model.layers.0.mlp.up_proj.weight", 6, 4);
    add(s, "model.layers.0.mlp.down_proj.weight", 4, 6);
    add(s, "model.norm.weight", 4, -1);
    add(s, "lm_head.weight", 8, 4);
}

static ent *find(ents *s, const char *suffix) {
    for (int i = 0; i < s->n; i++) {
        size_t a = strlen(s->e[i].name), b = strlen(suffix);
        if (a >= b && !strcmp(s->e[i].name + a - b, suffix)) return &s->e[i];
    }
    REQUIRE(0, "no tensor %s", suffix);
    return NULL;
}

static void drop(ents *s, const char *suffix) {
    ent *e = find(s, suffix);
    memmove(e, e + 1, sizeof *e * (size_t)(s->n - (e - s->e) - 1));
    s->n--;
}

/* Sequential offsets; returns the data size. */
static size_t layout(ents *s) {
    size_t off = 0;
    for (int i = 0; i < s->n; i++) {
        ent *e = &s->e[i];
        size_t es = !strcmp(e->dtype, "F32") ? 4 : !strcmp(e->dtype, "F16") || !strcmp(e->dtype, "BF16") ? 2 : 1;
        size_t numel = (size_t)e->shape[0] * (size_t)(e->ndim == 2 ? e->shape[1] : 1);
        e->begin = off;
        e->end = off + numel * es;
        off = e->end;
    }
    return off;
}

/* Writes a safetensors file: header from s (or raw_header verbatim), then data_bytes bytes. */
static void write_st(const char *path, const ents *s, const char *raw_header, size_t data_bytes) {
    char hdr[8192];
    size_t k = 0;
    if (raw_header) {
        k = (size_t)snprintf(hdr, sizeof hdr, "%s", raw_header);
    } else {
        k += (size_t)snprintf(hdr + k, sizeof hdr - k, "{\"__metadata__\":{\"format\":\"pt\"}");
        for (int i = 0; i < s->n; i++) {
            const ent *e = &s->e[i];
            k += (size_t)snprintf(hdr + k, sizeof hdr - k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", e->name, e->dtype,
                                  e->shape[0]);
            if (e->ndim == 2) k += (size_t)snprintf(hdr + k, sizeof hdr - k, ",%lld", e->shape[1]);
            k += (size_t)snprintf(hdr + k, sizeof hdr - k, "],\"data_offsets\":[%zu,%zu]}", e->begin, e->end);
        }
        k += (size_t)snprintf(hdr + k, sizeof hdr - k, "}");
    }
    while (k % 8) hdr[k++] = ' ';
    size_t total = 8 + k + data_bytes;
    uint8_t *buf = calloc(1, total);
    REQUIRE(buf, "oom");
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)k >> (8 * i));
    memcpy(buf + 8, hdr, k);
    for (size_t i = 0; i + 4 <= data_bytes; i += 4) { float one = 1.0f; memcpy(buf + 8 + k + i, &one, 4); }
    pb_test_write_file(path, buf, total);
    free(buf);
}

static const char *CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 4,\n"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
    " \"intermediate_size\": 6, \"vocab_size\": 8, \"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 64,\n"
    " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": [2, 3]}\n";

static char g_dir[4096], g_path[4200];

static const char *path_in(const char *name) {
    pb_test_join(g_path, sizeof g_path, g_dir, name);
    return g_path;
}

static void write_config(const char *text) { pb_test_write_file(path_in("config.json"), text, strlen(text)); }

/* config.json with `from` replaced by `to`. */
static void write_config_edit(const char *from, const char *to) {
    const char *p = strstr(CONFIG, from);
    REQUIRE(p, "config template lacks %s", from);
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - CONFIG), CONFIG, to, p + strlen(from));
    write_config(buf);
}

static void write_good_weights(void) {
    ents s;
    std_ents(&s);
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
}

/* ---- the check --------------------------------------------------------------------- */

/* Runs `prunebench info DIR`: exit 1 and exactly one stderr line naming file_part. */
static void check_cli(const char *file_part) {
    const char *bin = getenv("PB_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "note: prunebench CLI not built (PB_BIN=%s); CLI check skipped\n", bin ? bin : "unset");
        return;
    }
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' info '%s' 2>&1 >/dev/null", bin, g_dir);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "popen failed");
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "prunebench info exit status %d", st);
    const char *pre = "prunebench: error: ";
    CHECK_MSG(!strncmp(out, pre, strlen(pre)), "stderr: %s", out);
    char *nl = strchr(out, '\n');
    CHECK_MSG(nl && nl[1] == 0, "stderr is not exactly one line: %s", out);
    CHECK_MSG(strstr(out, file_part) != NULL, "stderr does not name %s: %s", file_part, out);
}

/* Loads g_dir (or `path` when given): must fail naming file (a name inside g_dir) and each of
 * the problem fragments. */
static void expect_fail(const char *file, const char *problem, const char *problem2) {
    pb_err err = {0};
    pb_model *m = (pb_model *)1;
    int rc = pb_model_load(g_dir, NULL, &m, NULL, &err);
    CHECK(rc != 0);
    CHECK(m == NULL);
    fprintf(stderr, "message: %s\n", err.msg);
    char full[4300];
    snprintf(full, sizeof full, "%s%s%s", g_dir, file[0] ? "/" : "", file);
    CHECK_MSG(strstr(err.msg, full) != NULL, "message does not name %s", full);
    CHECK_MSG(strstr(err.msg, problem) != NULL, "message does not say \"%s\"", problem);
    if (problem2) CHECK_MSG(strstr(err.msg, problem2) != NULL, "message does not say \"%s\"", problem2);
    CHECK(strchr(err.msg, '\n') == NULL);
    check_cli(full);
}

/* ---- cases --------------------------------------------------------------------------- */

static void c_truncated(void) {
    write_config(CONFIG);
    pb_test_write_file(path_in("model.safetensors"), "\x10\x00\x00\x00\x00", 5);
    expect_fail("model.safetensors", "truncated", NULL);
}

static void c_empty(void) {
    write_config(CONFIG);
    pb_test_write_file(path_in("model.safetensors"), "", 0);
    expect_fail("model.safetensors", "truncated", NULL);
}

static void c_header_too_long(void) {
    write_config(CONFIG);
    write_good_weights();
    FILE *f = fopen(path_in("model.safetensors"), "r+b");
    REQUIRE(f, "open");
    const uint8_t big[8] = {0, 0, 0, 0, 0, 1, 0, 0}; /* 2^40 */
    fwrite(big, 1, 8, f);
    fclose(f);
    expect_fail("model.safetensors", "header length", "exceeds the file size");
}

static void c_offsets_out_of_range(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s) - 4); /* data cut short */
    expect_fail("model.safetensors", "lm_head.weight", "out of range");
}

static void c_size_mismatch(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    size_t n = layout(&s);
    find(&s, "model.norm.weight")->end -= 4;
    write_st(path_in("model.safetensors"), &s, NULL, n);
    expect_fail("model.safetensors", "model.norm.weight", "span 12 bytes");
}

static void c_overlap(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    size_t n = layout(&s);
    ent *k = find(&s, "k_proj.weight"), *v = find(&s, "v_proj.weight");
    v->begin = k->begin + 4, v->end = k->end + 4;
    write_st(path_in("model.safetensors"), &s, NULL, n);
    expect_fail("model.safetensors", "overlap", "v_proj");
}

static void c_unknown_dtype(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    strcpy(find(&s, "mlp.up_proj.weight")->dtype, "I8");
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors", "model.layers.0.mlp.up_proj.weight", "unsupported dtype I8");
}

static void c_f8_dtype(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    strcpy(find(&s, "lm_head.weight")->dtype, "F8_E4M3");
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors", "lm_head.weight", "unsupported dtype F8_E4M3");
}

static void c_missing_tensor(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    drop(&s, "mlp.up_proj.weight");
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors", "missing tensor model.layers.0.mlp.up_proj.weight", NULL);
}

static void c_shape_mismatch(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    find(&s, "mlp.up_proj.weight")->shape[0] = 7;
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors",
                "tensor model.layers.0.mlp.up_proj.weight has shape [7, 4] but config.json implies [6, 4]", NULL);
}

static void c_unexpected_tensor(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    add(&s, "model.layers.0.self_attn.o_proj.bias", 4, -1); /* config.json declares no bias */
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors", "unexpected tensor model.layers.0.self_attn.o_proj.bias", NULL);
}

static void c_duplicate_tensor(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    add(&s, "model.norm.weight", 4, -1);
    write_st(path_in("model.safetensors"), &s, NULL, layout(&s));
    expect_fail("model.safetensors", "model.norm.weight", "twice");
}

static void c_bad_shape_value(void) {
    write_config(CONFIG);
    write_st(path_in("model.safetensors"), NULL,
             "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16);
    expect_fail("model.safetensors", "model.norm.weight", "shape[0]");
}

static void c_numel_overflow(void) {
    write_config(CONFIG);
    write_st(path_in("model.safetensors"), NULL,
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", 16);
    expect_fail("model.safetensors", "tensor x", "overflows");
}

static void c_bad_header_json(void) {
    write_config(CONFIG);
    write_st(path_in("model.safetensors"), NULL, "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [4", 16);
    expect_fail("model.safetensors", "malformed JSON header", NULL);
}

static void c_header_not_object(void) {
    write_config(CONFIG);
    write_st(path_in("model.safetensors"), NULL, "[1, 2, 3]", 16);
    expect_fail("model.safetensors", "malformed JSON header", NULL);
}

static void c_bad_config_json(void) {
    write_config("{\"model_type\": \"llama\",\n \"hidden_size\": 4,,\n}");
    write_good_weights();
    expect_fail("config.json", "malformed JSON", NULL);
}

static void c_config_wrong_type(void) {
    write_config_edit("\"hidden_size\": 4", "\"hidden_size\": \"4\"");
    write_good_weights();
    expect_fail("config.json", "\"hidden_size\" must be an integer", NULL);
}

static void c_config_missing_key(void) {
    write_config_edit("\"vocab_size\": 8, ", "");
    write_good_weights();
    expect_fail("config.json", "missing required key \"vocab_size\"", NULL);
}

static void c_config_bad_value(void) {
    write_config_edit("\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3");
    write_good_weights();
    expect_fail("config.json", "num_key_value_heads", "not a multiple");
}

static void c_config_negative(void) {
    write_config_edit("\"intermediate_size\": 6", "\"intermediate_size\": -6");
    write_good_weights();
    expect_fail("config.json", "\"intermediate_size\"", "out of range");
}

static void c_config_rope(void) {
    write_config_edit("\"rms_norm_eps\"", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0}, \"rms_norm_eps\"");
    write_good_weights();
    expect_fail("config.json", "\"rope_scaling\"", "yarn");
}

static void c_config_llama3_incomplete(void) {
    write_config_edit("\"rms_norm_eps\"", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}, \"rms_norm_eps\"");
    write_good_weights();
    expect_fail("config.json", "rope_scaling.low_freq_factor", NULL);
}

static void c_config_model_type(void) {
    write_config_edit("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"");
    write_good_weights();
    expect_fail("config.json", "\"model_type\"", "gpt2");
}

static void c_config_layers_len(void) {
    write_config_edit("\"rms_norm_eps\"", "\"prunebench_layers\": [{}, {}], \"rms_norm_eps\"");
    write_good_weights();
    expect_fail("config.json", "\"prunebench_layers\"", "2 entries");
}

static void c_config_layers_bias(void) {
    write_config_edit("\"rms_norm_eps\"",
                      "\"prunebench_layers\": [{\"attn\": false, \"n_heads\": 0, \"n_kv_heads\": 0, \"bias\": [\"o\"]}], "
                      "\"rms_norm_eps\"");
    write_good_weights();
    expect_fail("config.json", "prunebench_layers[0].bias", "without that sublayer");
}

static void c_no_config(void) {
    write_good_weights();
    expect_fail("config.json", "cannot open", NULL);
}

static void c_no_weights(void) {
    write_config(CONFIG);
    expect_fail("", "no model.safetensors", NULL);
}

/* sharded: model-00001 holds all but lm_head.weight, which the index puts in a missing shard */
static void write_shard1(ents *s) {
    std_ents(s);
    drop(s, "lm_head.weight");
    write_st(path_in("model-00001-of-00002.safetensors"), s, NULL, layout(s));
}

static void write_index(const ents *s, const char *extra) {
    char buf[8192];
    size_t k = (size_t)snprintf(buf, sizeof buf, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < s->n; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "\"%s\": \"model-00001-of-00002.safetensors\", ", s->e[i].name);
    snprintf(buf + k, sizeof buf - k, "%s}}", extra);
    pb_test_write_file(path_in("model.safetensors.index.json"), buf, strlen(buf));
}

static void c_missing_shard(void) {
    write_config(CONFIG);
    ents s;
    write_shard1(&s);
    write_index(&s, "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"");
    expect_fail("model.safetensors.index.json", "model-00002-of-00002.safetensors", "does not exist");
}

static void c_index_missing_tensor(void) {
    write_config(CONFIG);
    ents s;
    write_shard1(&s);
    write_index(&s, "\"lm_head.weight\": \"model-00001-of-00002.safetensors\"");
    expect_fail("model-00001-of-00002.safetensors", "lm_head.weight", "missing from this shard");
}

static void c_index_bad_shard_name(void) {
    write_config(CONFIG);
    ents s;
    write_shard1(&s);
    write_index(&s, "\"lm_head.weight\": \"../elsewhere.safetensors\"");
    expect_fail("model.safetensors.index.json", "lm_head.weight", "not a file name in this folder");
}

static void c_bad_shard(void) {
    write_config(CONFIG);
    ents s;
    write_shard1(&s);
    write_index(&s, "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"");
    pb_test_write_file(path_in("model-00002-of-00002.safetensors"), "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    expect_fail("model-00002-of-00002.safetensors", "exceeds the file size", NULL);
}

/* Deterministic mutations of a good file (header bytes, length field, truncation): each load
 * either succeeds with a valid model or fails with a message naming the file; under ASan this
 * is what finds reads past a check. */
static void c_fuzz(void) {
    write_config(CONFIG);
    ents s;
    std_ents(&s);
    size_t data = layout(&s);
    write_st(path_in("model.safetensors"), &s, NULL, data);
    char *good = NULL;
    size_t n = 0;
    pb_err err = {0};
    REQUIRE(pb_file_read_all(path_in("model.safetensors"), &good, &n, &err) == 0, "%s", err.msg);
    size_t hl = 8 + (size_t)(uint8_t)good[0] + ((size_t)(uint8_t)good[1] << 8);
    uint8_t *buf = malloc(n);
    REQUIRE(buf, "oom");
    uint32_t x = 2463534242u;
    int ok = 0, failed = 0;
    size_t cl = strlen(CONFIG);
    char *cbuf = malloc(cl);
    REQUIRE(cbuf, "oom");
    for (int it = 0; it < 600; it++) {
        if (it >= 450) { /* the last quarter mutates config.json instead */
            memcpy(cbuf, CONFIG, cl);
            for (int k = 0; k < 1 + it % 3; k++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                static const char crepl[] = "0123456789[]{},:\"-.eE tfn";
                cbuf[x % cl] = x >> 16 & 1 ? crepl[(x >> 8) % (sizeof crepl - 1)] : (char)(x >> 8);
            }
            pb_test_write_file(path_in("model.safetensors"), good, n);
            pb_test_write_file(path_in("config.json"), cbuf, it % 13 ? cl : x % cl);
        }
        memcpy(buf, good, n);
        size_t len = n;
        int nm = 1 + it % 4;
        for (int k = 0; k < nm; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            size_t at = it % 7 == 0 ? x % 8 : x % hl; /* mostly the header, sometimes the length field */
            static const char repl[] = "0123456789[]{},:\"-.eE \x00\xff";
            buf[at] = x >> 16 & 1 ? (uint8_t)repl[(x >> 8) % (sizeof repl - 1)] : (uint8_t)(x >> 8);
        }
        if (it % 11 == 0) len = x % n; /* truncation */
        if (it < 450) pb_test_write_file(path_in("model.safetensors"), buf, len);
        pb_model *m = NULL;
        if (pb_model_load(g_dir, NULL, &m, NULL, &err) == 0) {
            CHECK(pb_model_validate(m, &err) == 0);
            pb_model_free(m);
            ok++;
        } else {
            CHECK_MSG(m == NULL && strstr(err.msg, g_dir) && !strchr(err.msg, '\n'), "iteration %d: %s", it, err.msg);
            failed++;
        }
    }
    fprintf(stderr, "fuzz: %d loaded, %d rejected\n", ok, failed);
    CHECK(failed > 450); /* the mutations must actually break files */
    free(cbuf);
    free(buf);
    free(good);
}

static const struct { const char *name; void (*fn)(void); } cases[] = {
    {"fuzz", c_fuzz},
    {"truncated", c_truncated}, {"empty", c_empty}, {"header_too_long", c_header_too_long},
    {"offsets_out_of_range", c_offsets_out_of_range}, {"size_mismatch", c_size_mismatch}, {"overlap", c_overlap},
    {"unknown_dtype", c_unknown_dtype}, {"f8_dtype", c_f8_dtype}, {"missing_tensor", c_missing_tensor},
    {"shape_mismatch", c_shape_mismatch}, {"unexpected_tensor", c_unexpected_tensor},
    {"duplicate_tensor", c_duplicate_tensor}, {"bad_shape_value", c_bad_shape_value},
    {"numel_overflow", c_numel_overflow}, {"bad_header_json", c_bad_header_json},
    {"header_not_object", c_header_not_object}, {"bad_config_json", c_bad_config_json},
    {"config_wrong_type", c_config_wrong_type}, {"config_missing_key", c_config_missing_key},
    {"config_bad_value", c_config_bad_value}, {"config_negative", c_config_negative}, {"config_rope", c_config_rope},
    {"config_llama3_incomplete", c_config_llama3_incomplete}, {"config_model_type", c_config_model_type},
    {"config_layers_len", c_config_layers_len}, {"config_layers_bias", c_config_layers_bias},
    {"no_config", c_no_config}, {"no_weights", c_no_weights}, {"missing_shard", c_missing_shard},
    {"index_missing_tensor", c_index_missing_tensor}, {"index_bad_shard_name", c_index_bad_shard_name},
    {"bad_shard", c_bad_shard},
};

/* The good folder must load, or every failure above could come from a broken generator. */
static void c_control(void) {
    write_config(CONFIG);
    write_good_weights();
    pb_err err = {0};
    pb_model *m = NULL;
    REQUIRE(pb_model_load(g_dir, NULL, &m, NULL, &err) == 0, "control folder does not load: %s", err.msg);
    CHECK(m->cfg.eos_id == 2 && m->cfg.bos_id == 1 && m->layers[0].n_kv_heads == 1);
    pb_model_free(m);
}

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: io_bad CASE|control|all");
    int ran = 0;
    char sub[256];
    snprintf(sub, sizeof sub, "io_bad_%s", argv[1]);
    if (!strcmp(argv[1], "control") || !strcmp(argv[1], "all")) {
        pb_test_fresh_dir(g_dir, sizeof g_dir, "io_bad_control");
        c_control();
        ran++;
    }
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!strcmp(argv[1], "all") || !strcmp(argv[1], cases[i].name)) {
            snprintf(sub, sizeof sub, "io_bad_%s", cases[i].name);
            pb_test_fresh_dir(g_dir, sizeof g_dir, sub);
            fprintf(stderr, "case %s\n", cases[i].name);
            cases[i].fn();
            ran++;
        }
    REQUIRE(ran > 0, "unknown case %s", argv[1]);
    return pb_test_done(argv[1]);
}

/* test_tok_bad.c — malformed tokenizer files: a tokenizer.model, a llama2.c tokenizer.bin
 * and a tokenizer.json cut short at many points, garbage bytes, and randomly corrupted
 * copies. Every failed load must give one line naming the file; nothing may crash (this
 * test is meant to run under ASan + UBSan too). Also checks the small tokenizer.json it
 * writes encodes as HF would (merges, added token, byte-level decoding). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_test.h"
#include "tokenizer.h"

static const char *tmpdir;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

typedef enum { LOAD_AUTO, LOAD_SPM, LOAD_JSON, LOAD_L2C } load_kind;

/* Loads path; returns whether it loaded. A failure must be one line naming the file. A
 * success must give a tokenizer that encodes and decodes without crashing. */
static bool try_load(const char *path, load_kind k, int l2c_n) {
    pb_tokenizer *t = NULL;
    pb_err err;
    memset(&err, 0, sizeof err);
    int rc = k == LOAD_SPM ? pb_tok_load_spm(path, &t, &err) : k == LOAD_JSON ? pb_tok_load_hf_json(path, &t, &err)
           : k == LOAD_L2C ? pb_tok_load_llama2c(path, l2c_n, &t, &err) : pb_tok_load(path, &t, &err);
    if (rc != 0) {
        CHECK_MSG(t == NULL, "failed load left a tokenizer");
        CHECK_MSG(strstr(err.msg, path) != NULL, "error does not name the file: %s", err.msg);
        CHECK_MSG(strchr(err.msg, '\n') == NULL && err.msg[0], "error is not one line: %s", err.msg);
        return false;
    }
    const char *s = "Hello world, 12 caf\xC3\xA9 \xE2\x96\x81 <s> \xFF\n";
    int32_t *ids;
    size_t n;
    if (pb_tok_encode(t, s, strlen(s), true, &ids, &n, &err) == 0) {
        char buf[64];
        for (size_t i = 0; i < n; i++) pb_tok_decode(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
        free(ids);
    }
    pb_tok_free(t);
    return true;
}

/* Cuts data at each position in cuts (and at every position from `dense_from` on);
 * every cut must fail to load. */
static void cuts(const char *name, const uint8_t *data, size_t size, load_kind k, int l2c_n, size_t stride,
                 size_t dense_from) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cut_%s", tmpdir, name);
    int loaded = 0, tried = 0;
    for (size_t cut = 0; cut < size; cut = cut >= dense_from || cut < 64 ? cut + 1 : cut + stride) {
        pb_test_write_file(path, data, cut);
        tried++;
        if (try_load(path, k, l2c_n)) {
            if (loaded++ < 3) fprintf(stderr, "%s cut at %zu of %zu bytes loaded\n", name, cut, size);
        }
    }
    CHECK_MSG(loaded == 0, "%s: %d of %d cuts loaded", name, loaded, tried);
    remove(path);
}

static void garbage(const char *name, const uint8_t *seed, size_t seed_n, load_kind k) {
    char path[1024];
    snprintf(path, sizeof path, "%s/garbage_%s", tmpdir, name);
    size_t sizes[] = {1, 2, 3, 7, 64, 1000, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t *g = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++) g[j] = (uint8_t)rnd();
        if (seed_n && sizes[i] > seed_n) memcpy(g, seed, seed_n); /* a plausible start, then noise */
        pb_test_write_file(path, g, sizes[i]);
        CHECK_MSG(!try_load(path, k, 512), "%s garbage of %zu bytes loaded", name, sizes[i]);
        free(g);
    }
    remove(path);
}

/* Random byte corruptions: may load or not, must never crash. */
static void mutations(const char *name, const uint8_t *data, size_t size, load_kind k, int n, size_t region_from) {
    char path[1024];
    snprintf(path, sizeof path, "%s/mut_%s", tmpdir, name);
    uint8_t *c = malloc(size);
    for (int i = 0; i < n; i++) {
        memcpy(c, data, size);
        for (int f = 0; f < 1 + (int)(rnd() % 4); f++) {
            size_t at = region_from + rnd() % (size - region_from);
            c[at] = (rnd() & 1) ? (uint8_t)rnd() : (uint8_t)(c[at] ^ (1u << (rnd() % 8)));
        }
        pb_test_write_file(path, c, size);
        try_load(path, k, 512);
    }
    free(c);
    remove(path);
}

static const char mini_json[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":5,\"content\":\"<|endoftext|>\",\"single_word\":false,"
    "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
    "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
    "\"unk_token\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120ab\":4,\"<|endoftext|>\":5},\"merges\":[\"a b\",\"\\u0120 ab\"]}}";

static void test_mini_json(const char *path) {
    pb_tokenizer *t;
    pb_err err;
    REQUIRE(pb_tok_load(path, &t, &err) == 0, "%s", err.msg);
    CHECK(pb_tok_kind_of(t) == PB_TOK_BYTELEVEL && pb_tok_vocab_size(t) == 6 && !pb_tok_default_add_bos(t));
    const char *s = "ab ab<|endoftext|>a";
    int32_t *ids;
    size_t n;
    REQUIRE(pb_tok_encode(t, s, strlen(s), false, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK_MSG(n == 4 && ids[0] == 3 && ids[1] == 4 && ids[2] == 5 && ids[3] == 0, "mini json ids (%zu)", n);
    char buf[16];
    CHECK(n == 4 && pb_tok_decode(t, ids[0], ids[1], buf, sizeof buf) == 3 && !memcmp(buf, " ab", 3));
    CHECK(n == 4 && pb_tok_decode(t, ids[1], ids[2], buf, sizeof buf) == 0); /* special added token */
    free(ids);
    pb_tok_free(t);
}

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    tmpdir = pb_test_tmp();
    char path[1024];
    pb_err err;
    char *model, *bin;
    size_t model_n, bin_n;
    snprintf(path, sizeof path, "%s/data/tokenizer/tokenizer.model", shared);
    REQUIRE(pb_file_read_all(path, &model, &model_n, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    REQUIRE(pb_file_read_all(path, &bin, &bin_n, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/mini_tokenizer.json", tmpdir);
    pb_test_write_file(path, mini_json, strlen(mini_json));
    test_mini_json(path);

    /* tokenizer.model: dense over the first bytes and over the trainer and normalizer specs
     * at the end, strided through the 32000 pieces in between */
    cuts("tokenizer.model", (const uint8_t *)model, model_n, LOAD_SPM, 0, 997, model_n - 320);
    cuts("tokenizer.model.auto", (const uint8_t *)model, model_n, LOAD_AUTO, 0, 9973, model_n - 40);
    /* tok512.bin: every cut, with the vocabulary size a model file gives */
    cuts("tok512.bin", (const uint8_t *)bin, bin_n, LOAD_L2C, 512, 1, 0);
    cuts("mini_tokenizer.json", (const uint8_t *)mini_json, strlen(mini_json), LOAD_JSON, 0, 1, 0);
    cuts("mini_tokenizer.json.auto", (const uint8_t *)mini_json, strlen(mini_json), LOAD_AUTO, 0, 1, 0);
    /* pb_tok_load on a cut tok512.bin: a cut between entries is a smaller, valid-looking
     * vocabulary, so only a cut inside an entry is sure to fail; none may crash */
    snprintf(path, sizeof path, "%s/cut_tok512_auto.bin", tmpdir);
    for (size_t cut = 0; cut < bin_n; cut++) {
        pb_test_write_file(path, bin, cut);
        try_load(path, LOAD_AUTO, 0);
    }
    remove(path);

    garbage("any", NULL, 0, LOAD_AUTO);
    garbage("spm", (const uint8_t *)"\x0a\x0b\x0a\x05<unk>", 9, LOAD_SPM);
    garbage("spm_auto", (const uint8_t *)"\x0a\x0b\x0a\x05<unk>", 9, LOAD_AUTO);
    garbage("json", (const uint8_t *)"{\"model\":{", 10, LOAD_JSON);
    garbage("l2c", (const uint8_t *)"\x07\x00\x00\x00", 4, LOAD_L2C);
    garbage("l2c_auto", (const uint8_t *)"\x07\x00\x00\x00", 4, LOAD_AUTO);
    snprintf(path, sizeof path, "%s/does_not_exist.model", tmpdir);
    CHECK(!try_load(path, LOAD_AUTO, 0));

    mutations("tokenizer.model.specs", (const uint8_t *)model, model_n, LOAD_SPM, 150, model_n - 300);
    mutations("tokenizer.model", (const uint8_t *)model, model_n, LOAD_SPM, 40, 0);
    mutations("tok512.bin", (const uint8_t *)bin, bin_n, LOAD_L2C, 300, 0);
    mutations("mini_tokenizer.json", (const uint8_t *)mini_json, strlen(mini_json), LOAD_JSON, 300, 0);
    free(model);
    free(bin);
    return pb_test_done("test_tok_bad");
}

/* test_tok_spm.c — SentencePiece tokenizers without Python: the eval-protocol examples on
 * the LLaMA tokenizer.model, the llama2.c tok512.bin decoding the stories260K greedy ids into
 * the reference text, decode(encode(line)) == line on every WikiText-2 test line, and the
 * small API contracts (ids of empty text, pieces out of range, decode into a short buffer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_test.h"
#include "tokenizer.h"

static void check_ids(const pb_tokenizer *t, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    pb_err err;
    REQUIRE(pb_tok_encode(t, text, strlen(text), false, &ids, &n, &err) == 0, "%s", err.msg);
    bool same = n == n_want;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
    CHECK_MSG(same, "encode(%s) gave %zu ids, first %d", text, n, n ? ids[0] : -1);
    free(ids);
}

/* decodes ids token by token (prev = previous id) into a malloc'd string */
static char *decode_all(const pb_tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    size_t cap = 256, o = 0;
    char *s = malloc(cap), buf[512];
    for (size_t i = 0; i < n; i++) {
        size_t k = pb_tok_decode(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
        if (o + k + 1 > cap) { cap = 2 * (o + k + 1); s = realloc(s, cap); }
        memcpy(s + o, buf, k);
        o += k;
    }
    s[o] = 0;
    *len = o;
    return s;
}

static void test_llama_model(const char *shared) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/tokenizer/tokenizer.model", shared);
    pb_tokenizer *t;
    pb_err err;
    REQUIRE(pb_tok_load(path, &t, &err) == 0, "%s", err.msg);
    CHECK(pb_tok_vocab_size(t) == 32000);
    CHECK(pb_tok_bos(t) == 1 && pb_tok_eos(t) == 2);
    CHECK(pb_tok_kind_of(t) == PB_TOK_SPM);
    CHECK(pb_tok_default_add_bos(t));
    CHECK(pb_tok_piece(t, 29871) && !strcmp(pb_tok_piece(t, 29871), "\xE2\x96\x81"));
    CHECK(pb_tok_piece(t, 259) && !strcmp(pb_tok_piece(t, 259), "\xE2\x96\x81\xE2\x96\x81"));
    CHECK(pb_tok_piece(t, 13) && !strcmp(pb_tok_piece(t, 13), "<0x0A>"));
    CHECK(pb_tok_piece(t, -1) == NULL && pb_tok_piece(t, 32000) == NULL);
    /* eval-protocol.md section 5 */
    check_ids(t, " yes", (const int32_t[]){29871, 4874}, 2);
    check_ids(t, "yes", (const int32_t[]){4874}, 1);
    check_ids(t, " no", (const int32_t[]){29871, 694}, 2);
    check_ids(t, "\n\n", (const int32_t[]){29871, 13, 13}, 3);
    check_ids(t, " \n", (const int32_t[]){259, 13}, 2);
    check_ids(t, "Question: x?\nAnswer: yes", (const int32_t[]){894, 29901, 921, 29973, 13, 22550, 29901, 4874}, 8);
    check_ids(t, "", NULL, 0);

    int32_t *ids;
    size_t n;
    REQUIRE(pb_tok_encode(t, "", 0, true, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 1 && ids[0] == 1);
    free(ids);
    char buf[8];
    CHECK(pb_tok_decode(t, -1, 1, buf, sizeof buf) == 0);            /* BOS is a control token */
    CHECK(pb_tok_decode(t, 1, 4874, buf, sizeof buf) == 3 && !memcmp(buf, "yes", 3)); /* dummy prefix dropped */
    CHECK(pb_tok_decode(t, 13, 4874, buf, sizeof buf) == 4 && !memcmp(buf, " yes", 4));
    CHECK(pb_tok_decode(t, 4874, 13, buf, sizeof buf) == 1 && buf[0] == '\n'); /* byte piece */
    CHECK(pb_tok_decode(t, 4874, 4874, buf, 2) == 2);                  /* never past cap */
    CHECK(pb_tok_decode(t, -1, 99999, buf, sizeof buf) == 0);

    /* decode(encode(line)) == line for every WikiText-2 test line, with and without BOS */
    snprintf(path, sizeof path, "%s/data/wikitext2/wiki.test.raw", shared);
    char *text;
    size_t size;
    REQUIRE(pb_file_read_all(path, &text, &size, &err) == 0, "%s", err.msg);
    int lines = 0, bad = 0;
    for (char *p = text, *nl; p < text + size; p = nl + 1, lines++) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        size_t len = (size_t)(nl - p) + (nl < text + size); /* keep the newline */
        for (int bos = 0; bos < 2; bos++) {
            REQUIRE(pb_tok_encode(t, p, len, bos, &ids, &n, &err) == 0, "%s", err.msg);
            size_t dl;
            char *d = decode_all(t, ids, n, &dl);
            if (dl != len || memcmp(d, p, len)) {
                if (bad++ < 3) fprintf(stderr, "round trip differs on line %d (bos=%d): %.60s\n", lines, bos, p);
            }
            free(d);
            free(ids);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d WikiText lines did not round-trip", bad, 2 * lines);
    CHECK(lines == 4358);
    free(text);
    pb_tok_free(t);
}

static void test_llama2c(const char *shared) {
    char path[1024], *ids_txt, *want;
    size_t ids_size, want_size;
    pb_err err;
    pb_tokenizer *t, *t2;
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    REQUIRE(pb_tok_load_llama2c(path, 512, &t, &err) == 0, "%s", err.msg);
    REQUIRE(pb_tok_load(path, &t2, &err) == 0, "%s", err.msg); /* by content, every entry */
    CHECK(pb_tok_vocab_size(t) == 512 && pb_tok_vocab_size(t2) == 512);
    CHECK(pb_tok_bos(t) == 1 && pb_tok_eos(t) == 2 && pb_tok_kind_of(t) == PB_TOK_SPM);
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.greedy_ids.txt", shared);
    REQUIRE(pb_file_read_all(path, &ids_txt, &ids_size, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.greedy.txt", shared);
    REQUIRE(pb_file_read_all(path, &want, &want_size, &err) == 0, "%s", err.msg);
    int32_t ids[1024];
    size_t n = 0;
    for (char *p = ids_txt, *e; n < 1024; p = e) {
        long v = strtol(p, &e, 10);
        if (e == p) break;
        ids[n++] = (int32_t)v;
    }
    CHECK(n == 257 && ids[0] == 1);
    size_t dl;
    char *d = decode_all(t, ids, n, &dl);
    CHECK_MSG(dl == want_size && !memcmp(d, want, want_size), "decoded greedy ids differ from stories260K.greedy.txt:\n%s", d);
    free(d);
    d = decode_all(t2, ids, n, &dl);
    CHECK(dl == want_size && !memcmp(d, want, want_size));
    free(d);
    /* encoding the reference text and decoding it again gives the text back */
    int32_t *e;
    size_t ne;
    REQUIRE(pb_tok_encode(t, want, want_size, true, &e, &ne, &err) == 0, "%s", err.msg);
    CHECK(ne > 1 && e[0] == 1);
    d = decode_all(t, e, ne, &dl);
    CHECK(dl == want_size && !memcmp(d, want, want_size));
    free(d);
    free(e);
    free(ids_txt);
    free(want);
    pb_tok_free(t);
    pb_tok_free(t2);
}

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    test_llama_model(shared);
    test_llama2c(shared);
    return pb_test_done("test_tok_spm");
}

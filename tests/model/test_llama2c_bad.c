/* test_llama2c_bad.c — malformed llama2.c files must fail cleanly, never crash.
 *
 * Writes a tiny valid checkpoint (v0 and version 1) to the scratch dir, checks that those
 * load, then damages them: truncated, too long, headers lying about sizes, absurd or
 * overflowing header values, unsupported versions, empty and missing files. Each must
 * return non-zero with no model and a one-line error naming the file. Also run under
 * ASan+UBSan in the sanitizer build. */
#include "load.h"
#include "pb_test.h"

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

enum { DIM = 8, HID = 16, NL = 2, NH = 2, NKV = 1, VOC = 10, SEQ = 4 };

static char path[4096];

/* floats of a v0 file with a shared classifier */
static size_t v0_floats(void) {
    size_t hs = DIM / NH, kv = hs * NKV;
    return (size_t)VOC * DIM + NL * (2 * DIM + 2 * DIM * DIM + 2 * kv * DIM + 3 * HID * DIM) + DIM + SEQ * hs;
}

static void write_raw(const void *hdr, size_t nh, size_t n_floats, long extra_bytes) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    fwrite(hdr, 1, nh, f);
    size_t bytes = n_floats * 4 + (size_t)(extra_bytes > 0 ? extra_bytes : 0) - (size_t)(extra_bytes < 0 ? -extra_bytes : 0);
    for (size_t i = 0; i < bytes; i++) fputc(i % 4 == 3 ? 0x3c : 0, f); /* small positive floats */
    REQUIRE(fclose(f) == 0, "close %s", path);
}

static void write_v0(const int32_t h[7], size_t n_floats, long extra) { write_raw(h, 28, n_floats, extra); }

static void write_v1(const int32_t h[7], int32_t version, bool shared, size_t n_floats, size_t hdr_len) {
    uint8_t hdr[256] = {0};
    uint32_t magic = 0x616b3432;
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &version, 4);
    memcpy(hdr + 8, h, 28);
    hdr[36] = shared;
    write_raw(hdr, hdr_len, n_floats, 0);
}

static void expect_ok(const char *what) {
    pb_model *m = NULL;
    pb_err err;
    int rc = pb_llama2c_load(path, NULL, &m, NULL, &err);
    CHECK_MSG(rc == 0 && m, "%s: should load: %s", what, rc ? err.msg : "");
    pb_model_free(m);
}

static void expect_fail(const char *what, const char *needle) {
    pb_model *m = (pb_model *)path; /* must come back NULL */
    pb_err err = {0};
    int rc = pb_llama2c_load(path, NULL, &m, NULL, &err);
    CHECK_MSG(rc != 0, "%s: loaded", what);
    if (rc == 0) { pb_model_free(m); return; }
    CHECK_MSG(m == NULL, "%s: model not reset", what);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s: error does not name the file: %s", what, err.msg);
    CHECK_MSG(!strchr(err.msg, '\n'), "%s: error has a newline", what);
    CHECK_MSG(!needle || strstr(err.msg, needle), "%s: error lacks \"%s\": %s", what, needle, err.msg);
    fprintf(stderr, "  %s -> %s\n", what, err.msg);
}

int main(void) {
    snprintf(path, sizeof path, "%s/llama2c_bad.bin", pb_test_tmp());
    const int32_t good[7] = {DIM, HID, NL, NH, NKV, VOC, SEQ};
    size_t nf = v0_floats(), nf1 = nf - SEQ * (DIM / NH); /* version 1 has no freq_cis */

    write_v0(good, nf, 0);
    expect_ok("valid v0");
    int32_t uns[7] = {DIM, HID, NL, NH, NKV, -VOC, SEQ};
    write_v0(uns, nf + VOC * DIM, 0);
    expect_ok("valid v0, unshared classifier");
    write_v1(good, 1, true, nf1, 256);
    expect_ok("valid v1");
    write_v1(good, 1, false, nf1 + VOC * DIM, 256);
    expect_ok("valid v1, unshared classifier");

    write_v0(good, nf, -4);
    expect_fail("truncated by 4 bytes", "expected");
    write_v0(good, nf, -1);
    expect_fail("truncated by 1 byte", "expected");
    write_v0(good, nf, 4);
    expect_fail("4 bytes too long", "expected");
    write_v0(good, 0, 0);
    expect_fail("header only", "expected");
    write_v0(uns, nf, 0);
    expect_fail("unshared classifier missing", "expected");
    write_v1(good, 1, false, nf1, 256);
    expect_fail("v1 unshared classifier missing", "expected");
    write_v1(good, 1, true, nf, 256);
    expect_fail("v1 with v0 freq_cis", "expected");

    struct { int field; int32_t value; const char *what; } lies[] = {
        {2, NL + 1, "n_layers too large"},  {0, DIM * 2, "dim too large"},     {1, HID + 1, "hidden_dim off by one"},
        {4, NH, "n_kv_heads lying"},        {6, SEQ + 1, "seq_len lying"},     {5, VOC - 1, "vocab lying"},
        {0, 0, "dim 0"},                    {0, -8, "negative dim"},           {1, 0, "hidden 0"},
        {2, 0, "no layers"},                {2, -1, "negative layers"},        {3, 0, "no heads"},
        {4, 0, "no kv heads"},              {3, 3, "dim not divisible by heads"}, {4, 3, "heads not divisible by kv"},
        {3, 8, "head_size 1 (odd)"},       {5, INT32_MIN, "vocab INT32_MIN"}, {6, 0, "seq_len 0"},
        {6, INT32_MIN, "seq_len INT32_MIN"}, {2, INT32_MAX, "n_layers INT32_MAX"}, {1, INT32_MAX, "hidden INT32_MAX"},
        {5, INT32_MAX, "vocab INT32_MAX"},  {6, INT32_MAX, "seq_len INT32_MAX"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        int32_t h[7];
        memcpy(h, good, sizeof h);
        h[lies[i].field] = lies[i].value;
        write_v0(h, nf, 0);
        expect_fail(lies[i].what, NULL);
    }
    /* every dimension huge at once: the size computation itself would overflow 64 bits */
    int32_t huge[7] = {1 << 30, INT32_MAX, INT32_MAX, 1 << 10, 1 << 10, INT32_MAX, INT32_MAX};
    write_v0(huge, nf, 0);
    expect_fail("64-bit overflow", "large");

    write_v1(good, 2, true, nf1, 256);
    expect_fail("version 2", "not supported");
    write_v1(good, 7, true, nf1, 256);
    expect_fail("version 7", "version");
    write_v1(good, 1, true, 0, 100);
    expect_fail("v1 header cut short", "header");
    write_raw("", 0, 0, 0);
    expect_fail("empty file", NULL);
    write_raw("abcdefghij", 10, 0, 0);
    expect_fail("10-byte file", NULL);
    remove(path);
    expect_fail("missing file", NULL);
    snprintf(path, sizeof path, "%s", pb_test_tmp());
    expect_fail("a directory", NULL);
    return pb_test_done("model_llama2c_bad");
}

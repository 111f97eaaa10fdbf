/* test_base.c — unit tests for core/base: fp16/bf16 conversions against brute-force
 * references, the arena's alignment and growth, and error message formatting. */
#include "pb_base.h"
#include "pb_test.h"

#include <stdint.h>

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Nearest fp16 by exhaustive search over all finite halves (ties to even mantissa); what
 * round-to-nearest-even must give. Values beyond 65520 round to infinity. */
static uint16_t f16_nearest(float x) {
    if (fabsf(x) >= 65520.0f) return (uint16_t)((x < 0 ? 0x8000 : 0) | 0x7c00);
    uint16_t best = 0;
    double bd = INFINITY;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs((double)pb_f16_to_f32((uint16_t)h) - fabs((double)x));
        if (d < bd || (d == bd && (h & 1) == 0)) { bd = d; best = (uint16_t)h; }
    }
    return (uint16_t)(best | (x < 0 ? 0x8000 : 0));
}

static void test_f16(void) {
    /* every half round-trips through fp32 exactly (NaNs stay NaNs) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = pb_f16_to_f32((uint16_t)h);
        uint16_t back = pb_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) CHECK(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff));
        else CHECK_MSG(back == h, "half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
    }
    /* hand-computed values */
    CHECK(pb_f32_to_f16(1.0f) == 0x3c00);
    CHECK(pb_f32_to_f16(-2.0f) == 0xc000);
    CHECK(pb_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(pb_f32_to_f16(65520.0f) == 0x7c00);            /* halfway to 2^16 rounds up to inf */
    CHECK(pb_f32_to_f16(ldexpf(1, -24)) == 0x0001);      /* smallest subnormal */
    CHECK(pb_f32_to_f16(ldexpf(1, -25)) == 0x0000);      /* tie -> even (0) */
    CHECK(pb_f32_to_f16(3 * ldexpf(1, -25)) == 0x0002);  /* tie -> even (2) */
    CHECK(pb_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);
    CHECK(pb_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);
    CHECK(pb_f16_to_f32(0x3555) == bits_f(0x3eaaa000u)); /* 0.333251953125 */
    /* random fp32 values across the half range against exhaustive nearest search */
    uint64_t s = 42;
    for (int i = 0; i < 300; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        float x = ldexpf((float)(s >> 40) / (float)(1 << 24) + 0.5f, (int)((s >> 8) % 44) - 27) * ((s & 1) ? -1 : 1);
        CHECK_MSG(pb_f32_to_f16(x) == f16_nearest(x), "x=%.9g got 0x%04x want 0x%04x", (double)x, pb_f32_to_f16(x),
                  f16_nearest(x));
    }
}

static void test_bf16(void) {
    CHECK(pb_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(pb_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(pb_f32_to_bf16(bits_f(0x3f808000u)) == 0x3f80); /* tie -> even */
    CHECK(pb_f32_to_bf16(bits_f(0x3f818000u)) == 0x3f82); /* tie -> even (up) */
    CHECK(pb_f32_to_bf16(bits_f(0x3f808001u)) == 0x3f81); /* above half -> up */
    CHECK(isnan(pb_bf16_to_f32(pb_f32_to_bf16(NAN))));
    CHECK(pb_f32_to_bf16(INFINITY) == 0x7f80);
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue; /* NaN payloads may be quieted */
        CHECK(pb_f32_to_bf16(pb_bf16_to_f32((uint16_t)h)) == h);
    }
}

static void test_arena(void) {
    pb_arena a;
    pb_arena_init(&a, 1000);
    void *ptrs[100];
    for (int i = 0; i < 100; i++) {
        ptrs[i] = pb_arena_alloc(&a, (size_t)(i * 37 + 1));
        REQUIRE(ptrs[i] != NULL, "arena alloc %d", i);
        CHECK(((uintptr_t)ptrs[i] & 63) == 0);
        memset(ptrs[i], 0xab, (size_t)(i * 37 + 1)); /* ASan catches overlap or overrun */
    }
    unsigned char *big = pb_arena_alloc(&a, 5000); /* larger than the block size */
    REQUIRE(big != NULL, "big alloc");
    CHECK(big[0] == 0 && big[4999] == 0);
    CHECK(pb_arena_alloc_n(&a, SIZE_MAX / 2, 4) == NULL); /* overflow is refused, not wrapped */
    char *s = pb_arena_strdup(&a, "hello");
    CHECK(s && strcmp(s, "hello") == 0);
    pb_arena_free(&a);
    CHECK(a.head == NULL && a.total == 0);
}

static void test_err(void) {
    pb_err e = {0};
    CHECK(pb_err_set(&e, "%s: bad %d", "x.bin", 3) == -1);
    CHECK(strcmp(e.msg, "x.bin: bad 3") == 0);
    pb_err_set(&e, "line1\nline2");
    CHECK(strchr(e.msg, '\n') == NULL); /* one line whatever the input */
    pb_err_set(&e, "inner");
    pb_err_prefix(&e, "%s: ", "outer");
    CHECK(strcmp(e.msg, "outer: inner") == 0);
    pb_mmap m;
    CHECK(pb_mmap_open(&m, "/nonexistent/file.bin", false, &e) == -1);
    CHECK(strstr(e.msg, "/nonexistent/file.bin") != NULL);
}

static void test_sha256(void) {
    /* FIPS 180-2 test vectors */
    char hex[65];
    pb_sha256_hex("abc", 3, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    pb_sha256_hex("", 0, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/sha_test.txt", pb_test_tmp());
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    fputs("abc", f);
    fclose(f);
    pb_err e = {0};
    CHECK(pb_sha256_file(path, hex, &e) == 0 &&
          strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK(pb_sha256_file("/nonexistent/x", hex, &e) == -1 && strstr(e.msg, "/nonexistent/x"));
}

int main(void) {
    test_sha256();
    test_f16();
    test_bf16();
    test_arena();
    test_err();
    return pb_test_done("base_unit");
}

/* test_io_half.c — the fp16/bf16 conversions (core/base/pb_half.h, integer bit tricks) and
 * the bulk converters of safetensors.c must be bit-identical to an independent reference
 * written here with float arithmetic: all 65536 half patterns up, and a sweep of floats
 * (including every rounding tie near the subnormal range) down. Exactness is the
 * requirement, so comparisons are bitwise. */
#include "pb_test.h"
#include "safetensors.h"

#include <stdint.h>

/* ---- reference: a different algorithm from pb_half.h (scaling by powers of two) ---- */
static float ref_f16_to_f32(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0) v = ldexpf((float)man, -24);                           /* zero, subnormal: exact */
    else if (exp == 31 && man) { uint32_t u = (h & 0x8000u) << 16 | 0x7f800000u | (uint32_t)man << 13;
                                 memcpy(&v, &u, 4); return v; }   /* NaN: payload kept */
    else if (exp == 31) v = INFINITY;
    else v = ldexpf((float)(man | 0x400), exp - 25);                     /* exact: 11 bits */
    return (h & 0x8000) ? -v : v;
}
static float ref_bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static uint16_t ref_f32_to_f16(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    int e;
    frexpf(a, &e);                                   /* a = m * 2^e, m in [0.5, 1) */
    int q = e - 11 < -24 ? -24 : e - 11;             /* quantum of the half grid at a */
    double units = ldexp((double)a, -q);             /* exact in double */
    double r = floor(units), rem = units - r;
    if (rem > 0.5 || (rem == 0.5 && fmod(r, 2.0) == 1.0)) r += 1;
    float v = (float)ldexp(r, q);                    /* the rounded value, exactly representable */
    if (v == 0) return sign;
    int ve;
    frexpf(v, &ve);
    if (ve - 1 < -14) return sign | (uint16_t)ldexpf(v, 24);                    /* subnormal */
    return sign | (uint16_t)(((ve - 1 + 15) << 10) | ((uint32_t)ldexpf(v, 11 - ve) & 0x3ff));
}
static uint16_t ref_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40);
    uint32_t lo = u & 0xffff, hi = u >> 16;
    if (lo > 0x8000 || (lo == 0x8000 && (hi & 1))) hi++;
    return (uint16_t)hi;
}

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static int f16_up_all(void) {
    int bad = 0;
    uint8_t src[2 * 65536];
    float dst[65536];
    for (uint32_t h = 0; h < 65536; h++) {
        src[2 * h] = (uint8_t)h;
        src[2 * h + 1] = (uint8_t)(h >> 8);
        uint32_t want = fbits(ref_f16_to_f32((uint16_t)h)), got = fbits(pb_f16_to_f32((uint16_t)h));
        if (want != got && bad++ < 5) fprintf(stderr, "f16 %04x: got %08x, reference %08x\n", h, got, want);
        want = fbits(ref_bf16_to_f32((uint16_t)h));
        got = fbits(pb_bf16_to_f32((uint16_t)h));
        if (want != got && bad++ < 5) fprintf(stderr, "bf16 %04x: got %08x, reference %08x\n", h, got, want);
    }
    /* the bulk path (parallel above 65536 elements: exactly at the threshold here, so add
     * an unaligned run below it too) */
    pb_st_to_f32(PB_ST_F16, src, dst, 65536);
    for (uint32_t h = 0; h < 65536; h++)
        if (fbits(dst[h]) != fbits(ref_f16_to_f32((uint16_t)h)) && bad++ < 5) fprintf(stderr, "bulk f16 %04x\n", h);
    pb_st_to_f32(PB_ST_BF16, src + 1, dst, 1000); /* odd source address */
    for (uint32_t i = 0; i < 1000; i++) {
        uint16_t h = (uint16_t)(src[1 + 2 * i] | (src[2 + 2 * i] << 8));
        if (fbits(dst[i]) != fbits(ref_bf16_to_f32(h)) && bad++ < 5) fprintf(stderr, "bulk bf16 %u\n", i);
    }
    return bad;
}

static int down_one(float f) {
    int bad = 0;
    uint16_t a = pb_f32_to_f16(f), b = ref_f32_to_f16(f);
    bool nan = f != f;
    /* NaN payloads may legitimately differ in the quiet bit pattern; both must stay NaN */
    if (nan ? ((a & 0x7c00) != 0x7c00 || !(a & 0x3ff)) : a != b) {
        if (bad++ < 5) fprintf(stderr, "f32 %08x -> f16: got %04x, reference %04x\n", fbits(f), a, b);
    }
    a = pb_f32_to_bf16(f), b = ref_f32_to_bf16(f);
    if (a != b && bad++ < 5) fprintf(stderr, "f32 %08x -> bf16: got %04x, reference %04x\n", fbits(f), a, b);
    return bad;
}

static int f32_down_sweep(void) {
    int bad = 0;
    /* every 97th bit pattern covers all exponents and many mantissas */
    for (uint64_t u = 0; u <= 0xffffffffu && bad < 10; u += 97) bad += down_one(bitsf((uint32_t)u));
    /* every pattern whose dropped bits are exactly a tie or one ulp around it, for all exponents */
    for (uint32_t e = 0; e < 256 && bad < 10; e++)
        for (uint32_t m = 0; m < (1u << 10); m++)
            for (int s = -1; s <= 1; s++) {
                uint32_t base = (e << 23) | (m << 13) | 0x1000u;
                bad += down_one(bitsf(base + (uint32_t)s));
                bad += down_one(bitsf((base + (uint32_t)s) | 0x80000000u));
                uint32_t bb = (e << 23) | ((m & 0x7f) << 16) | 0x8000u;
                bad += down_one(bitsf(bb + (uint32_t)s));
            }
    /* subnormal-half range at full density */
    for (uint32_t u = 0x33000000u - 4; u <= 0x38800000u + 4 && bad < 10; u++) bad += down_one(bitsf(u));
    return bad;
}

static int bulk_down(void) {
    int bad = 0;
    enum { N = 200000 };
    float *src = malloc(N * sizeof *src);
    uint8_t *dst = malloc(2 * N);
    REQUIRE(src && dst, "out of memory");
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        src[i] = bitsf((x & 0x8fffffffu) | 0x30000000u); /* magnitudes around 1e-9 .. 1e9 */
    }
    pb_st_from_f32(PB_ST_F16, src, dst, N);
    for (int i = 0; i < N; i++)
        if ((uint16_t)(dst[2 * i] | dst[2 * i + 1] << 8) != ref_f32_to_f16(src[i]) && bad++ < 5)
            fprintf(stderr, "bulk f16 %d\n", i);
    pb_st_from_f32(PB_ST_BF16, src, dst, N);
    for (int i = 0; i < N; i++)
        if ((uint16_t)(dst[2 * i] | dst[2 * i + 1] << 8) != ref_f32_to_bf16(src[i]) && bad++ < 5)
            fprintf(stderr, "bulk bf16 %d\n", i);
    free(src);
    free(dst);
    return bad;
}

int main(void) {
    CHECK(f16_up_all() == 0);
    CHECK(f32_down_sweep() == 0);
    CHECK(bulk_down() == 0);
    return pb_test_done("io_half");
}

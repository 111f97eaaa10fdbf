/* pb_half.h — IEEE binary16 and bfloat16 <-> fp32 conversions: exact on the way up,
 * round-to-nearest-even on the way down (NaN stays NaN, overflow gives inf).
 *
 * Inline because loaders convert billions of weights one element at a time; a function
 * call per element would dominate. Integer-only, so the result does not depend on the
 * FPU's rounding mode or flush-to-zero settings. tests/base checks them against brute-force
 * nearest-value search, tests/io against an independent float-arithmetic version. */
#ifndef PB_HALF_H
#define PB_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t pb_f16_bits_to_f32_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u) return sign | 0x7f800000u | ((em & 0x3ffu) << 13);   /* inf, nan */
    if (em >= 0x0400u) return sign | ((em << 13) + (112u << 23));           /* normal: rebias 15 -> 127 */
    if (em == 0) return sign;
    /* subnormal m * 2^-24: normalise so that the leading 1 lands on bit 10 */
    uint32_t shift = (uint32_t)__builtin_clz(em) - 21u;
    em <<= shift;
    return sign | ((113u - shift) << 23) | ((em & 0x3ffu) << 13);
}

static inline float pb_f16_to_f32(uint16_t h) {
    uint32_t u = pb_f16_bits_to_f32_bits(h);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float pb_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t pb_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* keep NaN a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint16_t pb_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;          /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;         /* rounds to or beyond 65520: inf */
    if (a < 0x38800000u) {                               /* below the smallest normal half */
        if (a < 0x33000000u) return sign;                /* below half the smallest subnormal: 0 */
        /* subnormal result: shift the 24-bit significand down to units of 2^-24, RNE */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t s = 126u - e;                           /* 14..24 */
        uint32_t q = m >> s, rem = m & ((1u << s) - 1u), halfway = 1u << (s - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu);
    uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry into the exponent is right */
    return sign | (uint16_t)h;
}

#endif

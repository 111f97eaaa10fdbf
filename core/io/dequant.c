/* dequant.c — ggml tensor data to fp32: F32, F16, BF16 and the Q8_0, Q4_0, Q4_1 blocks.
 *
 * The arithmetic is exactly ggml's reference (and gguf-py's): one fp32 multiply per weight
 * (plus one fp32 add for Q4_1's minimum), so the loaded weights are bit-identical to what
 * llama.cpp dequantizes. The multiply and add must stay separate roundings: this file is
 * compiled as ISO C (-std=c11), where GCC does not contract a*b+c into an FMA. */
#include "gguf.h"

#include <string.h>

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return pb_f16_to_f32(h);
}

/* Q8_0 block (34 bytes): fp16 scale d, 32 int8 q; x = d*q */
static void deq_q8_0(const uint8_t *b, size_t nblk, float *y) {
    for (size_t i = 0; i < nblk; i++, b += 34, y += 32) {
        float d = f16_at(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* Q4_0 block (18 bytes): fp16 d, 16 bytes of nibbles; element j is the low nibble of byte
 * j, element j+16 its high nibble; x = (q - 8)*d */
static void deq_q4_0(const uint8_t *b, size_t nblk, float *y) {
    for (size_t i = 0; i < nblk; i++, b += 18, y += 32) {
        float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

/* Q4_1 block (20 bytes): fp16 d, fp16 m, 16 bytes of nibbles (same order); x = q*d + m */
static void deq_q4_1(const uint8_t *b, size_t nblk, float *y) {
    for (size_t i = 0; i < nblk; i++, b += 20, y += 32) {
        float d = f16_at(b), m = f16_at(b + 2);
        for (int j = 0; j < 16; j++) {
            float lo = (float)(b[4 + j] & 0x0f) * d, hi = (float)(b[4 + j] >> 4) * d;
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

bool pb_gguf_type_supported(uint32_t t) {
    return t == PB_GGML_F32 || t == PB_GGML_F16 || t == PB_GGML_BF16 || t == PB_GGML_Q8_0 || t == PB_GGML_Q4_0 ||
           t == PB_GGML_Q4_1;
}

int pb_gguf_dequantize(uint32_t type, const void *src, size_t n, float *dst) {
    const uint8_t *s = src;
    switch (type) {
    case PB_GGML_F32: memcpy(dst, s, n * sizeof(float)); return 0;
    case PB_GGML_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_at(s + 2 * i);
        return 0;
    case PB_GGML_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pb_bf16_to_f32(h);
        }
        return 0;
    case PB_GGML_Q8_0: if (n % 32) return -1; deq_q8_0(s, n / 32, dst); return 0;
    case PB_GGML_Q4_0: if (n % 32) return -1; deq_q4_0(s, n / 32, dst); return 0;
    case PB_GGML_Q4_1: if (n % 32) return -1; deq_q4_1(s, n / 32, dst); return 0;
    default: return -1;
    }
}

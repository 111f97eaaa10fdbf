/* test_cuda_ops.c — the CUDA backend's ops (memory, element-wise, linear) against the CPU
 * backend, for each weight storage type (f32, f16, bf16). Exits 77 when no CUDA device is
 * present (or prunebench was built without CUDA).
 *
 * The CPU reference gets the weights already rounded to the storage type, so a difference
 * measures only what the GPU path adds: the rounding of x for a cuBLASLt GEMM with f16/bf16
 * weights, and fp32 summation order. Ops that are one IEEE operation per element (add,
 * scale, dropout, copies, embedding) must match bit for bit.
 *
 * After a clean run with the decode GEMV on (the default), the program runs itself again
 * with PB_CUDA_GEMV=0, so that small n goes through cuBLASLt as well. */
#include "ops.h"
#include "pb_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const pb_ops *cpu, *gpu;
static const char *wname;
static bool gemv_on;
static uint64_t rng = 0x5eed1234abcdull;

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)pb_rng_uniform(&rng); }

static float *hrand(size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    REQUIRE(x, "out of host memory");
    for (size_t i = 0; i < n; i++) x[i] = frand(lo, hi);
    return x;
}

static void *dalloc(size_t bytes) {
    pb_err e;
    void *d = gpu->alloc(bytes, &e);
    REQUIRE(d, "%s", e.msg);
    return d;
}

static void *dput(const void *h, size_t bytes) {
    pb_err e;
    void *d = dalloc(bytes);
    REQUIRE(gpu->upload(d, h, bytes, &e) == 0, "upload: %s", e.msg);
    return d;
}

static void dget(void *h, const void *d, size_t bytes) {
    pb_err e;
    REQUIRE(gpu->download(h, d, bytes, &e) == 0, "download: %s", e.msg);
}

/* Weights on the device in the table's storage type; *host_ref gets what they hold, as fp32. */
static void *dweights(const float *w, size_t n, float **host_ref) {
    pb_err e;
    size_t es = gpu->wtype == PB_DT_F32 ? 4 : 2;
    void *d = dalloc(n * es + 64);
    REQUIRE(gpu->upload_weights(d, w, n, &e) == 0, "upload_weights: %s", e.msg);
    float *r = malloc((n ? n : 1) * sizeof *r);
    REQUIRE(r, "out of host memory");
    for (size_t i = 0; i < n; i++)
        r[i] = gpu->wtype == PB_DT_F16    ? pb_f16_to_f32(pb_f32_to_f16(w[i]))
               : gpu->wtype == PB_DT_BF16 ? pb_bf16_to_f32(pb_f32_to_bf16(w[i]))
                                          : w[i];
    *host_ref = r;
    return d;
}

static void report(const char *op, double worst, double tol) {
    printf("%-5s %-14s worst %-10.3g tol %.3g%s\n", wname, op, worst, tol, worst <= tol ? "" : "  FAIL");
    CHECK_MSG(worst <= tol, "%s %s: worst error %.3g above %.3g", wname, op, worst, tol);
}

static void sync_ok(const char *what) {
    pb_err e;
    int rc = gpu->sync(&e);
    CHECK_MSG(rc == 0, "%s: %s", what, e.msg);
}

/* ---- linear ------------------------------------------------------------------------------ */

/* Worst |y - ref| over the bound each element may differ by. With x rounded to u (relative)
 * and fp32 sums on both sides (off by at most in * 2^-24 of sum |w x| on the CPU, Higham's gamma_n,
 * twice that for tensor cores that may truncate instead of rounding),
 *   |y - ref| <= (u + 3 in 2^-24 + 2^-22) * (sum_k |w_k x_k| + |b| + |y0|) + 2^-24 sum_k |w_k|
 * where the 2^-22 covers adding b and y0 in another order, and the last term f16's
 * subnormal x (absolute error 2^-25). A wrong index or a lost row errs by O(1) of the bound's
 * scale, far above it. Returns the worst ratio error / bound (1 = at the bound). */
static double linear_case(int n, int in, int out, bool bias, bool acc, int offset) {
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *x = hrand(nx, -1, 1), *W = hrand(nw, -1, 1), *b = hrand(out, -1, 1), *y0 = hrand(ny, -2, 2);
    float s = 1.0f / sqrtf((float)(in > 0 ? in : 1));
    for (size_t i = 0; i < nw; i++) W[i] *= s;
    /* offset elements into each buffer: pointers that are not 16- or 256-byte aligned */
    float *Wpad = calloc(nw + offset + 1, sizeof *Wpad);
    REQUIRE(Wpad, "oom");
    memcpy(Wpad + offset, W, nw * sizeof *W);
    float *Wr_pad;
    char *dW = dweights(Wpad, nw + offset, &Wr_pad);
    const float *Wr = Wr_pad + offset;
    size_t es = gpu->wtype == PB_DT_F32 ? 4 : 2;
    float *dx = dalloc((nx + offset + 1) * 4), *dy = dalloc((ny + offset + 1) * 4), *db = dput(b, (size_t)out * 4);
    pb_err e;
    REQUIRE(gpu->upload(dx + offset, x, nx * 4, &e) == 0 && gpu->upload(dy + offset, y0, ny * 4, &e) == 0, "%s",
            e.msg);

    float *ref = malloc((ny + 1) * 4), *got = malloc((ny + 1) * 4);
    REQUIRE(ref && got, "oom");
    memcpy(ref, y0, ny * 4);
    cpu->linear(ref, x, Wr, bias ? b : NULL, n, in, out, acc);
    gpu->linear(dy + offset, dx + offset, dW + offset * es, bias ? db : NULL, n, in, out, acc);
    dget(got, dy + offset, ny * 4);

    bool x_rounded = gpu->wtype != PB_DT_F32 && !(gemv_on && n <= 8);
    double u = !x_rounded ? 0.0 : gpu->wtype == PB_DT_F16 ? 0x1p-11 : 0x1p-8;
    double rel = u + 3.0 * in * 0x1p-24 + 0x1p-22, worst = 0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double sx = 0, sw = 0;
            for (int k = 0; k < in; k++) {
                sx += fabs((double)Wr[(size_t)o * in + k] * x[(size_t)i * in + k]);
                sw += fabs((double)Wr[(size_t)o * in + k]);
            }
            size_t j = (size_t)i * out + o;
            sx += (bias ? fabs(b[o]) : 0) + (acc ? fabs(y0[j]) : 0);
            double bound = rel * sx + 0x1p-24 * sw, err = fabs((double)got[j] - ref[j]);
            double r = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0);
            if (!isfinite(got[j])) r = INFINITY;
            if (r > worst) worst = r;
        }
    free(x), free(W), free(b), free(y0), free(Wpad), free(Wr_pad), free(ref), free(got);
    gpu->free(dW), gpu->free(dx), gpu->free(dy), gpu->free(db);
    return worst;
}

static void test_linear(void) {
    static const int ns[] = {1, 3, 8, 37, 128};
    static const int shapes[][2] = {{64, 48}, {67, 33}, {256, 160}, {1024, 520}, {8, 1}};
    double worst = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int f = 0; f < 4; f++) {
                double w = linear_case(ns[a], shapes[s][0], shapes[s][1], f & 1, f & 2, 0);
                CHECK_MSG(w <= 1.0, "%s linear n=%d in=%d out=%d bias=%d acc=%d: error %.3g of the bound", wname,
                          ns[a], shapes[s][0], shapes[s][1], f & 1, (f >> 1) & 1, w);
                if (w > worst) worst = w;
            }
    /* pointers off the 16- and 256-byte alignment cuBLASLt and the GEMV's vector loads want */
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        double w = linear_case(ns[a], 256, 96, true, true, 1);
        CHECK_MSG(w <= 1.0, "%s linear n=%d misaligned: error %.3g of the bound", wname, ns[a], w);
        if (w > worst) worst = w;
    }
    report("linear/bound", worst, 1.0);

    /* empty shapes, as on the CPU: in == 0 gives y = b (or y + b, or 0); n == 0 or out == 0
     * leaves y alone. One IEEE add per element: exact. */
    float y0[12], b[4], got[12], ref[12];
    for (int i = 0; i < 12; i++) y0[i] = frand(-1, 1);
    for (int i = 0; i < 4; i++) b[i] = frand(-1, 1);
    float *dy = dalloc(sizeof y0), *db = dput(b, sizeof b);
    void *dW = dalloc(64);
    int bad = 0;
    for (int f = 0; f < 4; f++) {
        bool bias = f & 1, acc = f & 2;
        pb_err e;
        REQUIRE(gpu->upload(dy, y0, sizeof y0, &e) == 0, "%s", e.msg);
        memcpy(ref, y0, sizeof y0);
        cpu->linear(ref, NULL, NULL, bias ? b : NULL, 3, 0, 4, acc);
        gpu->linear(dy, NULL, dW, bias ? db : NULL, 3, 0, 4, acc);
        dget(got, dy, sizeof got);
        bad += memcmp(got, ref, sizeof got) != 0;
        gpu->linear(dy, NULL, dW, bias ? db : NULL, 0, 5, 4, acc);
        gpu->linear(dy, NULL, dW, bias ? db : NULL, 3, 5, 0, acc);
        dget(got, dy, sizeof got);
        bad += memcmp(got, ref, sizeof got) != 0;
    }
    CHECK_MSG(bad == 0, "%s linear with empty shapes: %d mismatches", wname, bad);
    gpu->free(dy), gpu->free(db), gpu->free(dW);
}

/* ---- element-wise ------------------------------------------------------------------------- */

static void test_rmsnorm(void) {
    static const int ds[] = {64, 1000, 4096};
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        int n = 37, d = ds[k];
        size_t nn = (size_t)n * d;
        float *x = hrand(nn, -3, 3), *w = hrand(d, 0.5f, 1.5f), *ref = malloc(nn * 4), *got = malloc(nn * 4);
        REQUIRE(ref && got, "oom");
        cpu->rmsnorm(ref, x, w, n, d, 1e-5f);
        float *dx = dput(x, nn * 4), *dw = dput(w, d * 4), *dy = dalloc(nn * 4);
        gpu->rmsnorm(dy, dx, dw, n, d, 1e-5f);
        dget(got, dy, nn * 4);
        gpu->rmsnorm(dx, dx, dw, n, d, 1e-5f); /* in place */
        float *got2 = malloc(nn * 4);
        REQUIRE(got2, "oom");
        dget(got2, dx, nn * 4);
        /* Both sum the squares in double; only the order differs, so 1/rms rounds to the same
         * float or one ulp away, and y = (x * inv) * w then differs by at most a couple of ulps
         * (8 * 2^-24 relative is 4 ulps at the least). */
        for (size_t i = 0; i < nn; i++) {
            double t = 8 * 0x1p-24 * fabs(ref[i]) + 1e-37;
            double r = fmax(fabs((double)got[i] - ref[i]), fabs((double)got2[i] - ref[i])) / t;
            if (!(r <= worst)) worst = isfinite(r) ? r : INFINITY;
        }
        free(x), free(w), free(ref), free(got), free(got2);
        gpu->free(dx), gpu->free(dw), gpu->free(dy);
    }
    report("rmsnorm/4ulp", worst, 1.0); /* worst as a fraction of the bound */
}

static void test_rope(void) {
    int n = 50, heads = 4, hd = 64, half = hd / 2;
    size_t nn = (size_t)n * heads * hd;
    float *x = hrand(nn, -2, 2), *ref = malloc(nn * 4), *got = malloc(nn * 4), inv[32];
    int32_t pos[50];
    REQUIRE(ref && got, "oom");
    for (int j = 0; j < half; j++) inv[j] = (float)pow(10000.0, -2.0 * j / hd);
    for (int i = 0; i < n; i++) pos[i] = i < 3 ? (int32_t[]){0, 1, 4096}[i] : (int32_t)(pb_rng_next(&rng) % 4097);
    memcpy(ref, x, nn * 4);
    cpu->rope(ref, pos, inv, n, heads, hd);
    float *dx = dput(x, nn * 4), *dinv = dput(inv, sizeof inv);
    int32_t *dpos = dput(pos, sizeof pos);
    gpu->rope(dx, dpos, dinv, n, heads, hd);
    dget(got, dx, nn * 4);
    /* Same double angle and double cos/sin (CUDA's within 2 ulp of double, so the float casts
     * agree but for rare ties) and the same unfused float arithmetic: a few ulps of max|x|. */
    double e = pb_test_rel_err(got, ref, nn);
    report("rope", e, 1e-6);
    free(x), free(ref), free(got);
    gpu->free(dx), gpu->free(dinv), gpu->free(dpos);
}

static void test_pointwise(void) {
    int64_t n = 100003;
    float *g = hrand(n, -10, 10), *u = hrand(n, -1, 1), *ref = malloc(n * 4), *got = malloc(n * 4);
    REQUIRE(ref && got, "oom");
    g[0] = 100, g[1] = -100, g[2] = 0, g[3] = -0.0f; /* expf overflow and the zeros */
    float *dg = dput(g, n * 4), *du = dput(u, n * 4), *dh = dalloc(n * 4);

    /* swiglu: CUDA's expf is within 2 ulp, glibc's within 1; 1 + e, the division and the
     * product round alike, and silu's relative error is at most e's: well within 8 ulps
     * (16 * 2^-24 relative). */
    cpu->swiglu(ref, g, u, n);
    gpu->swiglu(dh, dg, du, n);
    dget(got, dh, n * 4);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - ref[i]) / (16 * 0x1p-24 * fabs(ref[i]) + 1e-37);
        if (!(r <= worst)) worst = isfinite(r) ? r : INFINITY;
    }
    report("swiglu/8ulp", worst, 1.0); /* worst as a fraction of the bound */

    /* add and scale: one IEEE operation per element, so bit for bit */
    memcpy(ref, u, n * 4);
    cpu->add(ref, g, n);
    gpu->add(du, dg, n);
    dget(got, du, n * 4);
    CHECK_MSG(memcmp(got, ref, n * 4) == 0, "%s add differs", wname);
    cpu->scale(ref, 0.37f, n);
    gpu->scale(du, 0.37f, n);
    dget(got, du, n * 4);
    CHECK_MSG(memcmp(got, ref, n * 4) == 0, "%s scale differs", wname);

    /* dropout: the same hash, so the same mask and the same products, in and out of place */
    static const float ps[] = {0.1f, 0.5f, 0.0f};
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t key = pb_rng_next(&rng);
        cpu->dropout(ref, g, n, ps[k], key);
        gpu->dropout(dh, dg, n, ps[k], key);
        dget(got, dh, n * 4);
        bad += memcmp(got, ref, n * 4) != 0;
        gpu->dropout(dh, dh, n, ps[k], key + 1); /* aliased */
        cpu->dropout(ref, ref, n, ps[k], key + 1);
        dget(got, dh, n * 4);
        bad += memcmp(got, ref, n * 4) != 0;
    }
    CHECK_MSG(bad == 0, "%s dropout: %d of 6 masks differ", wname, bad);
    printf("%-5s %-14s %s\n", wname, "add/scale/drop", "exact");
    free(g), free(u), free(ref), free(got);
    gpu->free(dg), gpu->free(du), gpu->free(dh);
}

static void test_embedding(void) {
    int vocab = 100, d = 72, n = 33;
    float *table = hrand((size_t)vocab * d, -1, 1), *tref;
    void *dt = dweights(table, (size_t)vocab * d, &tref);
    int32_t tok[33];
    for (int i = 0; i < n; i++) tok[i] = i == 0 ? vocab - 1 : (int32_t)(pb_rng_next(&rng) % vocab);
    int32_t *dtok = dput(tok, sizeof tok);
    float ref[33 * 72], got[33 * 72], *dx = dalloc(sizeof got);
    cpu->embedding(ref, tref, tok, n, d);
    gpu->embedding(dx, dt, dtok, n, d);
    dget(got, dx, sizeof got);
    /* widening to fp32 is exact */
    CHECK_MSG(memcmp(got, ref, sizeof got) == 0, "%s embedding differs", wname);
    printf("%-5s %-14s %s\n", wname, "embedding", memcmp(got, ref, sizeof got) ? "DIFFERS" : "exact");
    free(table), free(tref);
    gpu->free(dt), gpu->free(dtok), gpu->free(dx);
}

/* ---- copies and memory ------------------------------------------------------------------------- */

static void test_kv_store(void) {
    int B = 3, T = 5, p0 = 7, n_kv = 2, hd = 8, kv_stride = 16;
    size_t bs = (size_t)n_kv * kv_stride * hd + 13, nc = bs * B, nk = (size_t)B * T * n_kv * hd;
    float *k = hrand(nk, -1, 1), *v = hrand(nk, -1, 1), *kc = malloc(nc * 4), *vc = malloc(nc * 4);
    float *gk = malloc(nc * 4), *gv = malloc(nc * 4);
    REQUIRE(kc && vc && gk && gv, "oom");
    for (size_t i = 0; i < nc; i++) kc[i] = -7.0f, vc[i] = -9.0f; /* rows not stored keep these */
    float *dkc = dput(kc, nc * 4), *dvc = dput(vc, nc * 4), *dk = dput(k, nk * 4), *dv = dput(v, nk * 4);
    cpu->kv_store(kc, vc, k, v, B, T, p0, n_kv, hd, kv_stride, bs);
    gpu->kv_store(dkc, dvc, dk, dv, B, T, p0, n_kv, hd, kv_stride, bs);
    dget(gk, dkc, nc * 4);
    dget(gv, dvc, nc * 4);
    CHECK_MSG(memcmp(gk, kc, nc * 4) == 0 && memcmp(gv, vc, nc * 4) == 0, "%s kv_store differs", wname);
    /* and the CPU reference itself put row t of (b, g) where ops.h says */
    CHECK(kc[2 * bs + ((size_t)1 * kv_stride + p0 + 4) * hd + 3] == k[(((size_t)2 * T + 4) * n_kv + 1) * hd + 3]);
    CHECK(kc[((size_t)0 * kv_stride + p0 - 1) * hd] == -7.0f);
    printf("%-5s %-14s %s\n", wname, "kv_store", "checked");
    free(k), free(v), free(kc), free(vc), free(gk), free(gv);
    gpu->free(dkc), gpu->free(dvc), gpu->free(dk), gpu->free(dv);
}

static void test_copy2d(void) {
    unsigned char src[10 * 40], dst[10 * 56], ref[10 * 56];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(pb_rng_next(&rng) & 255);
    memset(dst, 0xAB, sizeof dst);
    memcpy(ref, dst, sizeof ref);
    void *ds = dput(src, sizeof src), *dd = dput(dst, sizeof dst);
    cpu->copy2d(ref + 8, 56, src + 4, 40, 24, 9);
    gpu->copy2d((char *)dd + 8, 56, (char *)ds + 4, 40, 24, 9);
    dget(dst, dd, sizeof dst);
    CHECK_MSG(memcmp(dst, ref, sizeof dst) == 0, "%s copy2d differs", wname);
    printf("%-5s %-14s %s\n", wname, "copy2d", memcmp(dst, ref, sizeof dst) ? "DIFFERS" : "exact");
    gpu->free(ds), gpu->free(dd);
}

/* The device holds exactly the host's round-to-nearest-even bits, also for ties, overflow,
 * subnormals, NaN and inf, and across the staging chunks of a long upload. */
static void test_upload_weights(void) {
    size_t n = (size_t)4500000; /* more than one 8 MiB staging chunk of 2-byte weights */
    float *w = hrand(n, -3, 3);
    const float special[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e6f, 1e-8f, 3e-5f, -6e-8f,
                             1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                             INFINITY, -INFINITY, NAN, 3.4e38f, 1e-40f};
    memcpy(w, special, sizeof special);
    size_t es = gpu->wtype == PB_DT_F32 ? 4 : 2;
    void *d = dalloc(n * es);
    pb_err e;
    REQUIRE(gpu->upload_weights(d, w, n, &e) == 0, "%s", e.msg);
    unsigned char *got = malloc(n * es);
    REQUIRE(got, "oom");
    dget(got, d, n * es);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (es == 4) {
            bad += memcmp(got + 4 * i, &w[i], 4) != 0;
            continue;
        }
        uint16_t want = gpu->wtype == PB_DT_F16 ? pb_f32_to_f16(w[i]) : pb_f32_to_bf16(w[i]), have;
        memcpy(&have, got + 2 * i, 2);
        bad += have != want;
    }
    CHECK_MSG(bad == 0, "%s upload_weights: %zu of %zu values differ from the host rounding", wname, bad, n);
    printf("%-5s %-14s %zu values, %zu differ\n", wname, "upload_weights", n, bad);
    free(w), free(got);
    gpu->free(d);
}

static void test_memory(void) {
    pb_err e;
    gpu->mem_reset_peak();
    int64_t base = gpu->mem_peak();
    CHECK(base >= 0);
    void *p = gpu->alloc((size_t)3 << 20, &e);
    REQUIRE(p, "%s", e.msg);
    CHECK(gpu->mem_peak() >= base + (3 << 20));
    gpu->free(p);
    CHECK(gpu->mem_peak() >= base + (3 << 20)); /* a peak stays until reset */
    gpu->mem_reset_peak();
    CHECK_MSG(gpu->mem_peak() == base, "peak after reset %lld, expected %lld", (long long)gpu->mem_peak(),
              (long long)base);

    /* an impossible allocation fails with a message and leaves the backend usable */
    void *huge = gpu->alloc((size_t)1 << 52, &e);
    CHECK(huge == NULL);
    if (!huge) CHECK_MSG(strstr(e.msg, "cannot allocate") != NULL, "message: %s", e.msg);
    else gpu->free(huge);
    float one = 1.5f, *d = dput(&one, 4);
    gpu->scale(d, 2.0f, 1);
    dget(&one, d, 4);
    CHECK(one == 3.0f);
    gpu->free(d);
    sync_ok("after a failed allocation");

    /* a failure inside a void op is reported once, by the next sync, then cleared */
    static int not_ours;
    gpu->free(&not_ours);
    CHECK_MSG(gpu->sync(&e) != 0 && strncmp(e.msg, "cuda: ", 6) == 0, "a bad free was not reported");
    sync_ok("the error is cleared once reported");
    printf("%-5s %-14s checked\n", wname, "memory");
}

int main(int argc, char **argv) {
    (void)argc;
    pb_err err;
    if (!pb_ops_cuda(PB_DT_F32, &err)) {
        fprintf(stderr, "SKIP: %s\n", err.msg);
        return 77;
    }
    const char *g = getenv("PB_CUDA_GEMV");
    gemv_on = !(g && strcmp(g, "0") == 0);
    printf("decode GEMV %s\n", gemv_on ? "on" : "off (PB_CUDA_GEMV=0)");
    cpu = pb_ops_cpu();
    for (int t = 0; t < 3; t++) {
        gpu = pb_ops_cuda((pb_dtype)t, &err);
        REQUIRE(gpu, "pb_ops_cuda(%s): %s", pb_dtype_names[t], err.msg);
        REQUIRE(gpu->device && gpu->wtype == (pb_dtype)t && gpu->linear_bwd == NULL, "table of %s", pb_dtype_names[t]);
        wname = pb_dtype_names[t];
        test_upload_weights();
        test_linear();
        test_embedding();
        if (t == 0) {
            /* the ops that do not read weights are the same functions in every table */
            test_rmsnorm();
            test_rope();
            test_pointwise();
            test_kv_store();
            test_copy2d();
            test_memory();
        }
        sync_ok("end of the dtype's tests");
    }
    if (pb_test_failures == 0 && gemv_on) {
        fflush(stdout);
        setenv("PB_CUDA_GEMV", "0", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "cannot re-run with PB_CUDA_GEMV=0 (execv /proc/self/exe failed)\n");
        return 1;
    }
    return pb_test_done("cuda_ops");
}

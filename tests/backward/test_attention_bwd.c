/* test_attention_bwd.c — causal GQA attention backward against float64 finite differences,
 * without and with a cached prefix (p0 > 0), with padded KV rows (kv_stride > p0 + T) that
 * hold NaN: the backward must never read them and never write their gradient rows. */
#include "bwd_test.h"

typedef struct {
    double *q, *k, *v, *r, *out;
    int T, p0, nh, nkv, hd, stride;
} att_ctx;

#define MAX_KEYS 64

/* out (T, nh, hd) from q (T, nh, hd), k/v (nkv, stride, hd): the textbook formula. */
static void att_fwd(const att_ctx *c, double *out) {
    int group = c->nh / c->nkv;
    double scale = 1.0 / sqrt((double)c->hd), p[MAX_KEYS];
    for (int t = 0; t < c->T; t++)
        for (int h = 0; h < c->nh; h++) {
            const double *qr = c->q + ((size_t)t * c->nh + h) * c->hd;
            const double *kg = c->k + (size_t)(h / group) * c->stride * c->hd;
            const double *vg = c->v + (size_t)(h / group) * c->stride * c->hd;
            int nk = c->p0 + t + 1;
            double m = -INFINITY, z = 0;
            for (int j = 0; j < nk; j++) {
                p[j] = dotd(qr, kg + (size_t)j * c->hd, c->hd) * scale;
                m = p[j] > m ? p[j] : m;
            }
            for (int j = 0; j < nk; j++) z += (p[j] = exp(p[j] - m));
            double *o = out + ((size_t)t * c->nh + h) * c->hd;
            for (int d = 0; d < c->hd; d++) {
                double s = 0;
                for (int j = 0; j < nk; j++) s += p[j] / z * vg[(size_t)j * c->hd + d];
                o[d] = s;
            }
        }
}

static double att_loss(void *p) {
    att_ctx *c = p;
    att_fwd(c, c->out);
    return dotd(c->out, c->r, (size_t)c->T * c->nh * c->hd);
}

static void *xalloc(size_t n) {
    void *p = malloc(n);
    REQUIRE(p, "out of memory");
    return p;
}

/* One case; gradients are compared at every `every`-th coordinate. */
static void check_case(int T, int p0, int NH, int NKV, int HD, size_t every) {
    enum { PAD = 2 };
    int Tk = p0 + T, stride = Tk + PAD;
    REQUIRE(Tk <= MAX_KEYS, "case too large");
    size_t nq = (size_t)T * NH * HD, nkvel = (size_t)NKV * stride * HD;
    float *q = xalloc(nq * 4), *r = xalloc(nq * 4), *out = xalloc(nq * 4), *dq = xalloc(nq * 4);
    float *k = xalloc(nkvel * 4), *v = xalloc(nkvel * 4), *dk = xalloc(nkvel * 4), *dv = xalloc(nkvel * 4);
    double *qd = xalloc(nq * 8), *rd = xalloc(nq * 8), *ref = xalloc(nq * 8), *kd = xalloc(nkvel * 8);
    double *vd = xalloc(nkvel * 8);
    rnd_fill(q, qd, nq, 2.0f); /* scores of a few units: a peaked, not uniform, softmax */
    rnd_fill(k, kd, nkvel, 2.0f);
    rnd_fill(v, vd, nkvel, 1.0f);
    rnd_fill(r, rd, nq, 1.0f);
    for (int g = 0; g < NKV; g++)
        for (int j = Tk; j < stride; j++)
            for (int d = 0; d < HD; d++) {
                size_t o = ((size_t)g * stride + j) * HD + d;
                k[o] = v[o] = NAN; /* never to be read */
                kd[o] = vd[o] = 0;
            }
    att_ctx c = {qd, kd, vd, rd, ref, T, p0, NH, NKV, HD, stride};
    const pb_ops *ops = pb_ops_cpu();
    ops->attention(out, q, k, v, 1, T, p0, NH, NKV, HD, stride, 0);
    att_fwd(&c, ref);
    check_fwd("attention", out, ref, nq);

    const float sentinel = 12345.0f;
    for (size_t i = 0; i < nkvel; i++) dk[i] = dv[i] = sentinel;
    pb_err err = {0};
    REQUIRE(ops->attention_bwd(dq, dk, dv, r, q, k, v, T, p0, NH, NKV, HD, stride, &err) == 0, "%s", err.msg);
    char what[64];
    snprintf(what, sizeof what, "attention T=%d p0=%d dq", T, p0);
    check_fd_every(what, dq, qd, nq, every, att_loss, &c);
    /* the padded rows must keep the sentinel; then they are zeroed, which is also their FD */
    int n_bad = 0;
    for (int g = 0; g < NKV; g++)
        for (int j = Tk; j < stride; j++)
            for (int d = 0; d < HD; d++) {
                size_t o = ((size_t)g * stride + j) * HD + d;
                n_bad += dk[o] != sentinel || dv[o] != sentinel;
                dk[o] = dv[o] = 0.0f;
            }
    CHECK_MSG(n_bad == 0, "T=%d p0=%d: %d padded gradient values written", T, p0, n_bad);
    snprintf(what, sizeof what, "attention T=%d p0=%d dk", T, p0);
    check_fd_every(what, dk, kd, nkvel, every, att_loss, &c);
    snprintf(what, sizeof what, "attention T=%d p0=%d dv", T, p0);
    check_fd_every(what, dv, vd, nkvel, every, att_loss, &c);
    free(q); free(r); free(out); free(dq); free(k); free(v); free(dk); free(dv);
    free(qd); free(rd); free(ref); free(kd); free(vd);
}

int main(void) {
    /* GQA, 4 query heads on 2 KV heads, head_dim 8: every coordinate */
    check_case(7, 0, 4, 2, 8, 1);
    check_case(7, 3, 4, 2, 8, 1);
    /* large enough (heads*T*keys*hd > 65536) for the OpenMP path; every 7th coordinate (a
     * stride prime to head_dim, so every lane is visited) keeps the float64 sweep short */
    check_case(24, 5, 4, 2, 32, 7);
    return pb_test_done("backward_attention");
}

/* test_backward.c — every backward op of the CPU backend against central finite differences
 * of an independent float64 forward, plus the accumulation, aliasing and error contracts
 * documented in ops.h. Attention is in test_attention_bwd.c.
 *
 * Each op is checked on the random scalar L = sum(r * y(inputs)): the fp32 backward gets
 * dy = r, the reference is (L(p + h) - L(p - h)) / 2h of a double forward written here
 * from the formulas (not calling the fp32 code). The double forward is first compared with
 * the fp32 forward, so that the gradient checked is the gradient of the op the model runs. */
#include "bwd_test.h"

static const pb_ops *ops;

/* ---- linear ---- */
typedef struct { double *x, *W, *b, *r; int n, in, out; } lin_ctx;
static double lin_y(const lin_ctx *c, int i, int o) {
    double s = c->b[o];
    for (int k = 0; k < c->in; k++) s += c->x[i * c->in + k] * c->W[o * c->in + k];
    return s;
}
static double lin_loss(void *p) {
    lin_ctx *c = p;
    double L = 0;
    for (int i = 0; i < c->n; i++)
        for (int o = 0; o < c->out; o++) L += c->r[i * c->out + o] * lin_y(c, i, o);
    return L;
}
static void test_linear(void) {
    enum { N = 4, IN = 12, OUT = 8 };
    float x[N * IN], W[OUT * IN], b[OUT], r[N * OUT], y[N * OUT];
    double xd[N * IN], Wd[OUT * IN], bd[OUT], rd[N * OUT];
    rnd_fill(x, xd, N * IN, 1.0f);
    rnd_fill(W, Wd, OUT * IN, 1.0f);
    rnd_fill(b, bd, OUT, 1.0f);
    rnd_fill(r, rd, N * OUT, 1.0f);
    lin_ctx c = {xd, Wd, bd, rd, N, IN, OUT};
    ops->linear(y, x, W, b, N, IN, OUT, false);
    double yref[N * OUT];
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) yref[i * OUT + o] = lin_y(&c, i, o);
    check_fwd("linear", y, yref, N * OUT);

    float dx[N * IN], dW[OUT * IN] = {0}, db[OUT] = {0};
    ops->linear_bwd(dx, dW, db, r, x, W, N, IN, OUT, false);
    check_fd("linear dx", dx, xd, N * IN, lin_loss, &c);
    check_fd("linear dW", dW, Wd, OUT * IN, lin_loss, &c);
    check_fd("linear db", db, bd, OUT, lin_loss, &c);

    /* a second call adds the same amounts again: weight gradients exactly double (x + x is
     * exact in binary floating point), and dx doubles only when asked to accumulate */
    float dW1[OUT * IN], db1[OUT], dx1[N * IN];
    memcpy(dW1, dW, sizeof dW);
    memcpy(db1, db, sizeof db);
    memcpy(dx1, dx, sizeof dx);
    ops->linear_bwd(dx, dW, db, r, x, W, N, IN, OUT, false);
    CHECK(same(dx, dx1, N * IN));
    ops->linear_bwd(dx, dW, db, r, x, W, N, IN, OUT, true);
    CHECK(scaled(dW, dW1, OUT * IN, 3.0f) && scaled(db, db1, OUT, 3.0f) && scaled(dx, dx1, N * IN, 2.0f));
    /* frozen weights: NULL gradients are skipped, dx is unchanged */
    ops->linear_bwd(dx, NULL, NULL, r, x, W, N, IN, OUT, false);
    CHECK(same(dx, dx1, N * IN));
}

/* ---- rmsnorm ---- */
typedef struct { double *x, *w, *r; int n, d; double eps; } rms_ctx;
static void rms_fwd(const rms_ctx *c, double *y) {
    for (int i = 0; i < c->n; i++) {
        double ss = 0;
        for (int j = 0; j < c->d; j++) ss += c->x[i * c->d + j] * c->x[i * c->d + j];
        double inv = 1.0 / sqrt(ss / c->d + c->eps);
        for (int j = 0; j < c->d; j++) y[i * c->d + j] = c->x[i * c->d + j] * inv * c->w[j];
    }
}
static double rms_loss(void *p) {
    rms_ctx *c = p;
    double y[64 * 64];
    rms_fwd(c, y);
    return dotd(y, c->r, c->n * c->d);
}
static void test_rmsnorm(void) {
    enum { N = 3, D = 16 };
    float x[N * D], w[D], r[N * D], y[N * D];
    double xd[N * D], wd[D], rd[N * D], yref[N * D];
    rnd_fill(x, xd, N * D, 2.0f);
    rnd_fill(w, wd, D, 1.5f);
    rnd_fill(r, rd, N * D, 1.0f);
    rms_ctx c = {xd, wd, rd, N, D, 1e-5};
    ops->rmsnorm(y, x, w, N, D, 1e-5f);
    rms_fwd(&c, yref);
    check_fwd("rmsnorm", y, yref, N * D);

    float dx[N * D], dw[D] = {0};
    ops->rmsnorm_bwd(dx, dw, r, x, w, N, D, 1e-5f);
    check_fd("rmsnorm dx", dx, xd, N * D, rms_loss, &c);
    check_fd("rmsnorm dw", dw, wd, D, rms_loss, &c);
    /* dx may overwrite dy: same numbers in place; dw accumulates (exactly doubles) */
    float io[N * D], dw1[D];
    memcpy(io, r, sizeof r);
    memcpy(dw1, dw, sizeof dw);
    ops->rmsnorm_bwd(io, dw, io, x, w, N, D, 1e-5f);
    CHECK(same(io, dx, N * D));
    CHECK(scaled(dw, dw1, D, 2.0f));
}

/* ---- rope ---- */
typedef struct { double *x, *r; const int32_t *pos; const double *inv; int n, heads, hd; } rope_ctx;
static void rope_fwd(const rope_ctx *c, double *y) {
    int half = c->hd / 2;
    for (int i = 0; i < c->n; i++)
        for (int h = 0; h < c->heads; h++)
            for (int j = 0; j < half; j++) {
                size_t o = ((size_t)i * c->heads + h) * c->hd + j;
                double a = c->pos[i] * c->inv[j], x1 = c->x[o], x2 = c->x[o + half];
                y[o] = x1 * cos(a) - x2 * sin(a);
                y[o + half] = x2 * cos(a) + x1 * sin(a);
            }
}
static double rope_loss(void *p) {
    rope_ctx *c = p;
    double y[256];
    rope_fwd(c, y);
    return dotd(y, c->r, c->n * c->heads * c->hd);
}
static void test_rope(void) {
    enum { N = 5, H = 2, HD = 8, M = N * H * HD };
    const int32_t pos[N] = {0, 1, 7, 300, 2047};
    float x[M], r[M], y[M], invf[HD / 2];
    double xd[M], rd[M], yref[M], invd[HD / 2];
    for (int j = 0; j < HD / 2; j++) {
        invf[j] = (float)pow(10000.0, -2.0 * j / HD);
        invd[j] = invf[j]; /* the angle uses the fp32 frequency, as the backend receives it */
    }
    rnd_fill(x, xd, M, 1.0f);
    rnd_fill(r, rd, M, 1.0f);
    rope_ctx c = {xd, rd, pos, invd, N, H, HD};
    memcpy(y, x, sizeof x);
    ops->rope(y, pos, invf, N, H, HD);
    rope_fwd(&c, yref);
    check_fwd("rope", y, yref, M);
    float dx[M];
    memcpy(dx, r, sizeof r);
    ops->rope_bwd(dx, pos, invf, N, H, HD);
    check_fd("rope dx", dx, xd, M, rope_loss, &c);
}

/* ---- swiglu ---- */
typedef struct { double *g, *u, *r; int n; } swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    double L = 0;
    for (int i = 0; i < c->n; i++) L += c->r[i] * c->g[i] / (1.0 + exp(-c->g[i])) * c->u[i];
    return L;
}
static void test_swiglu(void) {
    enum { N = 40 };
    float g[N], u[N], r[N], h[N];
    double gd[N], ud[N], rd[N], href[N];
    rnd_fill(g, gd, N, 5.0f); /* wide enough to reach both tails of the sigmoid */
    rnd_fill(u, ud, N, 1.0f);
    rnd_fill(r, rd, N, 1.0f);
    swi_ctx c = {gd, ud, rd, N};
    ops->swiglu(h, g, u, N);
    for (int i = 0; i < N; i++) href[i] = gd[i] / (1.0 + exp(-gd[i])) * ud[i];
    check_fwd("swiglu", h, href, N);
    float dg[N], du[N];
    ops->swiglu_bwd(dg, du, r, g, u, N);
    check_fd("swiglu dg", dg, gd, N, swi_loss, &c);
    check_fd("swiglu du", du, ud, N, swi_loss, &c);
    /* dg may alias dh, as the driver reuses the buffer */
    float io[N];
    memcpy(io, r, sizeof r);
    ops->swiglu_bwd(io, du, io, g, u, N);
    CHECK(same(io, dg, N));
}

/* ---- embedding ---- */
typedef struct { double *table, *r; const int32_t *tok; int n, d; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    double L = 0;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->d; j++) L += c->r[i * c->d + j] * c->table[c->tok[i] * c->d + j];
    return L;
}
static void test_embedding(void) {
    enum { V = 6, D = 8, N = 4 };
    const int32_t tok[N] = {1, 3, 1, 5}; /* token 1 twice: its rows must add */
    float table[V * D], r[N * D], x[N * D];
    double td[V * D], rd[N * D], xref[N * D];
    rnd_fill(table, td, V * D, 1.0f);
    rnd_fill(r, rd, N * D, 1.0f);
    emb_ctx c = {td, rd, tok, N, D};
    ops->embedding(x, table, tok, N, D);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) xref[i * D + j] = td[tok[i] * D + j];
    check_fwd("embedding", x, xref, N * D);
    float dt[V * D] = {0}, dt1[V * D];
    ops->embedding_bwd(dt, r, tok, N, D);
    check_fd("embedding d_table", dt, td, V * D, emb_loss, &c);
    memcpy(dt1, dt, sizeof dt);
    ops->embedding_bwd(dt, r, tok, N, D);
    CHECK(scaled(dt, dt1, V * D, 2.0f));
}

/* ---- cross-entropy ---- */
typedef struct { double *z; const int32_t *tgt; int n, v; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    double L = 0;
    int sel = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->tgt[i] < 0) continue;
        double zs = 0;
        for (int j = 0; j < c->v; j++) zs += exp(c->z[i * c->v + j]);
        L += log(zs) - c->z[i * c->v + c->tgt[i]];
        sel++;
    }
    return L / sel;
}
static void test_cross_entropy(void) {
    enum { N = 5, V = 11 };
    const int32_t tgt[N] = {3, -1, 0, 10, -1};
    float z[N * V], dz[N * V];
    double zd[N * V];
    rnd_fill(z, zd, N * V, 3.0f);
    ce_ctx c = {zd, tgt, N, V};
    pb_err err = {0};
    double loss = -1;
    int64_t nsel = -1;
    REQUIRE(ops->cross_entropy(&loss, &nsel, dz, z, tgt, N, V, &err) == 0, "%s", err.msg);
    CHECK(nsel == 3);
    /* the loss is computed in double from the same fp32 logits: only summation order differs */
    CHECK_NEAR(loss, ce_loss(&c), 1e-12);
    check_fd("cross-entropy d_logits", dz, zd, N * V, ce_loss, &c);
    for (int j = 0; j < V; j++) CHECK(dz[1 * V + j] == 0.0f && dz[4 * V + j] == 0.0f);
    /* in place on the logits, and loss-only (no gradient buffer) */
    float io[N * V];
    memcpy(io, z, sizeof z);
    double loss2 = 0, loss3 = 0;
    REQUIRE(ops->cross_entropy(&loss2, NULL, io, io, tgt, N, V, &err) == 0, "%s", err.msg);
    CHECK(same(io, dz, N * V) && loss2 == loss);
    REQUIRE(ops->cross_entropy(&loss3, NULL, NULL, z, tgt, N, V, &err) == 0, "%s", err.msg);
    CHECK(loss3 == loss);
    /* nothing selected: zero loss, zero gradient, no division by zero */
    const int32_t none[N] = {-1, -1, -1, -1, -1};
    REQUIRE(ops->cross_entropy(&loss, &nsel, dz, z, none, N, V, &err) == 0, "%s", err.msg);
    CHECK(loss == 0.0 && nsel == 0);
    for (int i = 0; i < N * V; i++) CHECK(dz[i] == 0.0f);
    /* bad input: one-line errors naming the row */
    const int32_t big[N] = {3, 11, 0, 0, 0}, neg[N] = {3, 0, -2, 0, 0};
    CHECK(ops->cross_entropy(&loss, NULL, dz, z, big, N, V, &err) != 0 && strstr(err.msg, "row 1"));
    CHECK(ops->cross_entropy(&loss, NULL, dz, z, neg, N, V, &err) != 0 && strstr(err.msg, "row 2"));
    z[3 * V + 2] = NAN;
    CHECK(ops->cross_entropy(&loss, NULL, dz, z, tgt, N, V, &err) != 0 && strstr(err.msg, "row 3"));
}

int main(void) {
    ops = pb_ops_cpu();
    test_linear();
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_embedding();
    test_cross_entropy();
    return pb_test_done("backward_ops");
}

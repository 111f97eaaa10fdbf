/* cuda_sdpa.cu — causal GQA attention through cuDNN's fused flash attention (backend API).
 *
 * There is no cuDNN frontend header here, so the operation graph is built by hand with the
 * backend C API, as the frontend's composite SDPA node lowers it for cuDNN < 9.21 (the
 * "flash fused attention fprop" pattern of the cuDNN graph API):
 *   S  = matmul(Q, K^T)                     Q (B,H,T,d), K^T (B,Hk,d,S): GQA when Hk < H
 *   S1 = S * scale                          scale 1/sqrt(d), a by-value scalar
 *   causal mask: row = gen_index(S1, axis 2), col = gen_index(S1, axis 3),
 *        [p0 > 0: row = row + S - T, two int32 pointwise ops: bottom-right alignment]
 *        keep = row >= col, S2 = keep ? S1 : -inf   (binary select)
 *   softmax: M = max(S2), E = exp(S2 - M), L = sum(E), stats = M + log L (virtual),
 *        P = E / L stored as the I/O type
 *   O  = matmul(P, V)                       V (B,Hk,S,d), O (B,H,T,d)
 * Q, K, V and O are fp16 (f16 table) or bf16 (bf16 table); every matmul and pointwise op
 * computes in fp32. Q and O keep the driver's (B, T, H, d) layout through their strides; K
 * and V rows 0..S-1 are packed from the cache into (B, Hk, S, d) half copies.
 *
 * Plans are cached per shape (B, T, p0, H, Hk, d, dtype). The first call of a shape builds
 * and finalizes the graph and a plan (heuristics mode A, then FALLBACK, first engine config
 * that finalizes); on any cuDNN error the shape is remembered as unsupported, one line says
 * why on stderr, and the caller runs the project's own kernels. Not thread-safe: one thread
 * of control drives the backend, as everywhere in the driver. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

namespace {

constexpr int SDPA_CACHE_MAX = 64; /* plans kept (each holds ~60 descriptors and maybe compiled kernels) */
constexpr int SDPA_LOG_MAX = 16;   /* "unsupported" lines printed before the rest are suppressed */

/* Deprecated in cuDNN 9 but still how a graph and a plan are bound to a handle; spelled by
 * value so that the deprecation attribute on the enumerators does not warn. */
const cudnnBackendAttributeName_t ATTR_GRAPH_HANDLE = (cudnnBackendAttributeName_t)800; /* ..._OPERATIONGRAPH_HANDLE */
const cudnnBackendAttributeName_t ATTR_PLAN_HANDLE = (cudnnBackendAttributeName_t)400;  /* ..._EXECUTION_PLAN_HANDLE */

enum : int64_t { UID_Q = 1, UID_K = 2, UID_V = 3, UID_O = 4, UID_SCALE = 5, UID_NEGINF = 6, UID_SKV = 7, UID_SQ = 8,
                 UID_VIRTUAL = 100 };

struct sdpa_key {
    int B, T, p0, H, Hk, hd, dt;
    bool operator==(const sdpa_key &o) const {
        return B == o.B && T == o.T && p0 == o.p0 && H == o.H && Hk == o.Hk && hd == o.hd && dt == o.dt;
    }
};

struct sdpa_entry {
    sdpa_key key;
    bool ok;                                     /* false: cuDNN cannot run this shape */
    cudnnBackendDescriptor_t plan;
    int64_t workspace;                           /* bytes */
    uint64_t used;                               /* for least-recently-used eviction */
    std::vector<cudnnBackendDescriptor_t> descs; /* everything the plan was built from, freed with it */
};

cudnnHandle_t g_handle = nullptr;
int g_state = 0; /* 0 not tried, 1 usable, -1 unusable (reason logged once) */
size_t g_version = 0;
sdpa_entry g_cache[SDPA_CACHE_MAX];
int g_cached = 0;
uint64_t g_clock = 0;
int g_logged = 0;

void release(sdpa_entry *e) {
    for (size_t i = e->descs.size(); i-- > 0;) cudnnBackendDestroyDescriptor(e->descs[i]);
    e->descs.clear();
    e->plan = nullptr;
    e->ok = false;
}

void log_unsupported(const sdpa_key &k, const char *why) {
    if (g_logged > SDPA_LOG_MAX) return;
    if (g_logged++ == SDPA_LOG_MAX) {
        fprintf(stderr, "prunebench: cuda: further cuDNN SDPA messages suppressed\n");
        return;
    }
    fprintf(stderr,
            "prunebench: cuda: cuDNN SDPA unsupported for B=%d T=%d p0=%d heads=%d kv_heads=%d head_dim=%d %s: %s ; "
            "using own kernels\n",
            k.B, k.T, k.p0, k.H, k.Hk, k.hd, k.dt == PB_DT_BF16 ? "bf16" : "f16", why);
}

/* Descriptor builder: the first failing call sets why (call, status, cuDNN's own message)
 * and turns every later call into a no-op, so the graph code reads straight through. */
struct builder {
    std::vector<cudnnBackendDescriptor_t> descs;
    bool failed = false;
    char why[384] = {0};

    void fail(const char *what, cudnnStatus_t st) {
        if (failed) return;
        failed = true;
        char last[256] = {0};
        cudnnGetLastErrorString(last, sizeof last);
        snprintf(why, sizeof why, "%s: %s%s%s", what, cudnnGetErrorString(st), last[0] ? " - " : "", last);
    }
    cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
        if (failed) return nullptr;
        cudnnBackendDescriptor_t d = nullptr;
        cudnnStatus_t st = cudnnBackendCreateDescriptor(type, &d);
        if (st != CUDNN_STATUS_SUCCESS) {
            fail("cudnnBackendCreateDescriptor", st);
            return nullptr;
        }
        descs.push_back(d);
        return d;
    }
    void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
             int64_t n, const void *val, const char *what) {
        if (failed) return;
        cudnnStatus_t st = cudnnBackendSetAttribute(d, name, type, n, val);
        if (st != CUDNN_STATUS_SUCCESS) fail(what, st);
    }
    void link(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t x,
              const char *what) {
        set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, what);
    }
    void finalize(cudnnBackendDescriptor_t d, const char *what) {
        if (failed) return;
        cudnnStatus_t st = cudnnBackendFinalize(d);
        if (st != CUDNN_STATUS_SUCCESS) fail(what, st);
    }

    cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4],
                                    bool is_virtual, bool by_value = false) {
        cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
        const int64_t align = 16;
        const bool virt = is_virtual;
        set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor data type");
        set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dimensions");
        set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, "tensor strides");
        set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
        set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
        set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, "tensor is_virtual");
        if (by_value) {
            const bool bv = true;
            set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv, "tensor is_by_value");
        }
        finalize(t, "finalize tensor");
        return t;
    }

    /* y = mode(x [, b [, t]]); math precision prec; axis for gen_index (< 0: not set) */
    cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, int64_t axis,
                                       cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                       cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, const char *what) {
        cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
        set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, what);
        if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
        finalize(pw, what);
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, what);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what);
        if (b) link(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, what);
        if (t) link(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, what);
        link(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what);
        finalize(op, what);
        return op;
    }

    cudnnBackendDescriptor_t reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                                       cudnnBackendDescriptor_t y, const char *what) {
        const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t rd = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, what);
        set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
        finalize(rd, what);
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, what);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, what);
        link(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd, what);
        finalize(op, what);
        return op;
    }

    cudnnBackendDescriptor_t matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                                    cudnnBackendDescriptor_t c, const char *what) {
        const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t md = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        set(md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, what);
        finalize(md, what);
        cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, what);
        link(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, md, what);
        finalize(op, what);
        return op;
    }
};

/* Builds the graph of the file comment for key k and a plan for it into e; false (e->ok
 * false, why set) when cuDNN refuses at any step. */
bool build_plan(const sdpa_key &k, sdpa_entry *e, char *why, size_t cap) {
    builder g;
    const int64_t B = k.B, H = k.H, Hk = k.Hk, T = k.T, S = (int64_t)k.p0 + k.T, d = k.hd;
    const cudnnDataType_t io = k.dt == PB_DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32, b8 = CUDNN_DATA_BOOLEAN;
    const int64_t qd[4] = {B, H, T, d}, qs[4] = {T * H * d, d, H * d, 1}; /* the driver's (B, T, H, d) */
    const int64_t kd[4] = {B, Hk, d, S}, ks[4] = {Hk * S * d, S * d, 1, d}; /* K^T of packed (B, Hk, S, d) */
    const int64_t vd[4] = {B, Hk, S, d}, vs[4] = {Hk * S * d, S * d, d, 1};
    const int64_t sd[4] = {B, H, T, S}, ss[4] = {H * T * S, T * S, S, 1};
    const int64_t rd[4] = {B, H, T, 1}, rs[4] = {H * T, T, 1, 1};
    const int64_t one[4] = {1, 1, 1, 1};
    int64_t vid = UID_VIRTUAL;

    cudnnBackendDescriptor_t tq = g.tensor(UID_Q, io, qd, qs, false), tk = g.tensor(UID_K, io, kd, ks, false);
    cudnnBackendDescriptor_t tv = g.tensor(UID_V, io, vd, vs, false), to = g.tensor(UID_O, io, qd, qs, false);
    cudnnBackendDescriptor_t tscale = g.tensor(UID_SCALE, f32, one, one, false, true);
    cudnnBackendDescriptor_t tneginf = g.tensor(UID_NEGINF, f32, one, one, false, true);
    std::vector<cudnnBackendDescriptor_t> ops;

    cudnnBackendDescriptor_t s0 = g.tensor(vid++, f32, sd, ss, true);
    ops.push_back(g.matmul(tq, tk, s0, "bmm1 (Q K^T)"));
    cudnnBackendDescriptor_t s1 = g.tensor(vid++, f32, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_MUL, f32, -1, s0, tscale, nullptr, s1, "scale"));

    cudnnBackendDescriptor_t row = g.tensor(vid++, i32, sd, ss, true), col = g.tensor(vid++, i32, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, 2, s1, nullptr, nullptr, row, "row index"));
    ops.push_back(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, 3, s1, nullptr, nullptr, col, "column index"));
    if (k.p0 > 0) { /* query row t is position p0 + t = t + S - T: the diagonal starts at column p0 */
        cudnnBackendDescriptor_t tskv = g.tensor(UID_SKV, i32, one, one, false, true);
        cudnnBackendDescriptor_t tsq = g.tensor(UID_SQ, i32, one, one, false, true);
        cudnnBackendDescriptor_t r1 = g.tensor(vid++, i32, sd, ss, true), r2 = g.tensor(vid++, i32, sd, ss, true);
        ops.push_back(g.pointwise(CUDNN_POINTWISE_ADD, i32, 3, row, tskv, nullptr, r1, "row + s_kv"));
        ops.push_back(g.pointwise(CUDNN_POINTWISE_SUB, i32, 3, r1, tsq, nullptr, r2, "row + s_kv - s_q"));
        row = r2;
    }
    cudnnBackendDescriptor_t keep = g.tensor(vid++, b8, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_CMP_GE, b8, -1, row, col, nullptr, keep, "causal compare"));
    cudnnBackendDescriptor_t s2 = g.tensor(vid++, f32, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, -1, s1, tneginf, keep, s2, "causal select"));

    cudnnBackendDescriptor_t mx = g.tensor(vid++, f32, rd, rs, true);
    ops.push_back(g.reduction(CUDNN_REDUCE_TENSOR_MAX, s2, mx, "softmax max"));
    cudnnBackendDescriptor_t z = g.tensor(vid++, f32, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_SUB, f32, -1, s2, mx, nullptr, z, "softmax sub"));
    cudnnBackendDescriptor_t ex = g.tensor(vid++, f32, sd, ss, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_EXP, f32, -1, z, nullptr, nullptr, ex, "softmax exp"));
    cudnnBackendDescriptor_t sum = g.tensor(vid++, f32, rd, rs, true);
    ops.push_back(g.reduction(CUDNN_REDUCE_TENSOR_ADD, ex, sum, "softmax sum"));
    cudnnBackendDescriptor_t lg = g.tensor(vid++, f32, rd, rs, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_LOG, f32, -1, sum, nullptr, nullptr, lg, "softmax log"));
    cudnnBackendDescriptor_t stats = g.tensor(vid++, f32, rd, rs, true);
    ops.push_back(g.pointwise(CUDNN_POINTWISE_ADD, f32, -1, mx, lg, nullptr, stats, "softmax stats"));
    cudnnBackendDescriptor_t p = g.tensor(vid++, io, sd, ss, true); /* bmm2 takes P in the I/O type */
    ops.push_back(g.pointwise(CUDNN_POINTWISE_DIV, f32, -1, ex, sum, nullptr, p, "softmax div"));
    ops.push_back(g.matmul(p, tv, to, "bmm2 (P V)"));

    cudnnBackendDescriptor_t graph = g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)ops.size(), ops.data(),
          "graph ops");
    g.set(graph, ATTR_GRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &g_handle, "graph handle");
    g.finalize(graph, "finalize operation graph");

    /* first engine config (mode A, then FALLBACK) whose plan finalizes */
    cudnnBackendDescriptor_t plan = nullptr;
    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    for (int mi = 0; mi < 2 && !g.failed && !plan; mi++) {
        cudnnBackendDescriptor_t heur = g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
        g.link(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics graph");
        g.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[mi], "heuristics mode");
        g.finalize(heur, "finalize heuristics");
        if (g.failed) break;
        int64_t n = 0;
        cudnnStatus_t st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, nullptr);
        if (st != CUDNN_STATUS_SUCCESS) {
            g.fail("heuristics result count", st);
            break;
        }
        if (n > 16) n = 16;
        std::vector<cudnnBackendDescriptor_t> cfgs;
        for (int64_t i = 0; i < n && !g.failed; i++) cfgs.push_back(g.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
        if (g.failed) break;
        int64_t got = 0;
        if (n > 0) {
            st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
                                          cfgs.data());
            if (st != CUDNN_STATUS_SUCCESS) {
                g.fail("heuristics results", st);
                break;
            }
        }
        for (int64_t i = 0; i < got && i < n && !plan; i++) {
            cudnnBackendDescriptor_t cand = nullptr;
            st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &cand);
            if (st != CUDNN_STATUS_SUCCESS) {
                g.fail("create execution plan", st);
                break;
            }
            if (cudnnBackendSetAttribute(cand, ATTR_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &g_handle) ==
                    CUDNN_STATUS_SUCCESS &&
                cudnnBackendSetAttribute(cand, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         1, &cfgs[(size_t)i]) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendFinalize(cand) == CUDNN_STATUS_SUCCESS) {
                plan = cand;
                g.descs.push_back(cand);
            } else {
                cudnnBackendDestroyDescriptor(cand); /* this engine cannot take the graph: try the next */
            }
        }
    }
    int64_t ws = 0;
    if (!g.failed && !plan)
        snprintf(g.why, sizeof g.why, "no engine config of the heuristics finalizes a plan for this graph");
    else if (plan) {
        int64_t cnt = 0;
        cudnnStatus_t st =
            cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, &ws);
        if (st != CUDNN_STATUS_SUCCESS || ws < 0) {
            g.fail("plan workspace size", st != CUDNN_STATUS_SUCCESS ? st : CUDNN_STATUS_INTERNAL_ERROR);
            plan = nullptr;
        }
    }
    e->descs.swap(g.descs); /* freed by release() whatever happened */
    e->plan = g.failed ? nullptr : plan;
    e->ok = e->plan != nullptr;
    e->workspace = ws;
    if (!e->ok) {
        snprintf(why, cap, "%s", g.why);
        release(e);
    }
    return e->ok;
}

/* Handle and version checks, once. */
bool sdpa_ready(const pb_cuda_ctx *ctx) {
    if (g_state) return g_state > 0;
    g_state = -1;
    g_version = cudnnGetVersion();
    const char *why = nullptr;
    if (g_version < 90000)
        why = "cuDNN older than 9.0";
    else if (g_version == 91000 || g_version == 91001)
        why = "cuDNN 9.10.0/9.10.1 have known fp16/bf16 SDPA forward bugs";
    else if (ctx->cc_major < 8)
        why = "fused attention needs compute capability 8.0 or newer";
    else {
        cudnnStatus_t st = cudnnCreate(&g_handle);
        if (st != CUDNN_STATUS_SUCCESS) {
            g_handle = nullptr;
            fprintf(stderr, "prunebench: cuda: cuDNN SDPA unavailable: cudnnCreate: %s ; using own kernels\n",
                    cudnnGetErrorString(st));
            return false;
        }
        g_state = 1;
        return true;
    }
    fprintf(stderr, "prunebench: cuda: cuDNN SDPA unavailable (runtime cuDNN %zu): %s ; using own kernels\n",
            g_version, why);
    return false;
}

/* Limits known before asking cuDNN (from the frontend's SDPA support surface); NULL when
 * cuDNN may take the shape. */
const char *shape_refused(const pb_cuda_ctx *ctx, const sdpa_key &k) {
    if (k.hd % 8 != 0) return "head_dim must be a multiple of 8";
    if (k.hd > 256) return "head_dim above 256";
    if (ctx->cc_major == 8 && k.hd > 128 && g_version <= 90900) return "head_dim above 128 on Ampere before cuDNN 9.10";
    if (k.p0 > 0 && g_version < 90600) return "a cached prefix (bottom-right causal mask) needs cuDNN 9.6";
    return nullptr;
}

sdpa_entry *lookup(const pb_cuda_ctx *ctx, const sdpa_key &k) {
    for (int i = 0; i < g_cached; i++)
        if (g_cache[i].key == k) {
            g_cache[i].used = ++g_clock;
            return &g_cache[i];
        }
    int slot = g_cached;
    if (g_cached == SDPA_CACHE_MAX) { /* evict the least recently used */
        slot = 0;
        for (int i = 1; i < g_cached; i++)
            if (g_cache[i].used < g_cache[slot].used) slot = i;
        release(&g_cache[slot]);
    } else {
        g_cached++;
    }
    sdpa_entry *e = &g_cache[slot];
    e->key = k;
    e->used = ++g_clock;
    e->plan = nullptr;
    e->workspace = 0;
    e->ok = false;
    char why[400];
    const char *refused = shape_refused(ctx, k);
    if (refused)
        log_unsupported(k, refused);
    else if (!build_plan(k, e, why, sizeof why))
        log_unsupported(k, why);
    return e;
}

/* ---- conversions between the driver's fp32 and cuDNN's half-precision copies ------ */

__device__ __forceinline__ void store_io(__half *p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void store_io(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ float load_io(__half x) { return __half2float(x); }
__device__ __forceinline__ float load_io(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename IO>
__global__ void sdpa_to_io(IO *dst, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        store_io(dst + i, src[i]);
}

template <typename IO>
__global__ void sdpa_from_io(float *dst, const IO *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = load_io(src[i]);
}

/* dst (B, Hk, S, d) packed = rows 0..S-1 of every KV head of src (B sequences batch_stride
 * apart, each (Hk, kv_stride, d)) */
template <typename IO>
__global__ void sdpa_pack_kv(IO *dst, const float *src, int64_t B, int64_t Hk, int64_t S, int64_t d, int64_t kv_stride,
                             int64_t batch_stride) {
    const int64_t n = B * Hk * S * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t e = i % d, j = (i / d) % S, g = (i / (d * S)) % Hk, b = i / (d * S * Hk);
        store_io(dst + i, src[b * batch_stride + (g * kv_stride + j) * d + e]);
    }
}

template <typename IO>
bool launch_inputs(cudaStream_t st, IO *qh, IO *kh, IO *vh, const float *q, const float *k, const float *v,
                   int64_t nq, int64_t B, int64_t Hk, int64_t S, int64_t d, int64_t kv_stride, int64_t batch_stride) {
    const int64_t nkv = B * Hk * S * d;
    sdpa_to_io<IO><<<pb_cuda_blocks(nq, 256), 256, 0, st>>>(qh, q, nq);
    if (PB_CU_LAUNCH()) return true;
    sdpa_pack_kv<IO><<<pb_cuda_blocks(nkv, 256), 256, 0, st>>>(kh, k, B, Hk, S, d, kv_stride, batch_stride);
    if (PB_CU_LAUNCH()) return true;
    sdpa_pack_kv<IO><<<pb_cuda_blocks(nkv, 256), 256, 0, st>>>(vh, v, B, Hk, S, d, kv_stride, batch_stride);
    return PB_CU_LAUNCH();
}

template <typename IO>
bool launch_output(cudaStream_t st, float *out, const IO *oh, int64_t nq) {
    sdpa_from_io<IO><<<pb_cuda_blocks(nq, 256), 256, 0, st>>>(out, oh, nq);
    return PB_CU_LAUNCH();
}

} // namespace

/* See cuda_attention.cu: 0 done, 1 not taken by cuDNN (run the own kernels), -1 CUDA error
 * (reported). Shapes are validated by the caller. */
int pb_cuda_sdpa_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                           int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride, pb_dtype wtype) {
    if (wtype != PB_DT_F16 && wtype != PB_DT_BF16) return 1;
    const pb_cuda_ctx *ctx = pb_cuda_ctx_get();
    if (!ctx || !sdpa_ready(ctx)) return 1;
    const sdpa_key key = {B, T, p0, n_heads, n_kv, hd, (int)wtype};
    sdpa_entry *e = lookup(ctx, key);
    if (!e->ok) return 1;

    const int64_t S = (int64_t)p0 + T, nq = (int64_t)B * T * n_heads * hd, nkv = (int64_t)B * n_kv * S * hd;
    const size_t esz = 2; /* fp16 and bf16 */
    void *qh = pb_cuda_scratch(PB_CS_ATT_0, (size_t)nq * esz), *kh = pb_cuda_scratch(PB_CS_ATT_1, (size_t)nkv * esz);
    void *vh = pb_cuda_scratch(PB_CS_ATT_2, (size_t)nkv * esz), *oh = pb_cuda_scratch(PB_CS_ATT_3, (size_t)nq * esz);
    void *ws = e->workspace > 0 ? pb_cuda_scratch(PB_CS_ATT_4, (size_t)e->workspace) : nullptr;
    if (!qh || !kh || !vh || !oh || (e->workspace > 0 && !ws)) {
        char why[160];
        snprintf(why, sizeof why, "cannot allocate cuDNN attention scratch (%lld bytes of copies, %lld of workspace)",
                 (long long)(2 * (nq + nkv) * (int64_t)esz), (long long)e->workspace);
        pb_cuda_fail(__FILE__, __LINE__, "attention", why);
        return -1;
    }
    const bool bf = wtype == PB_DT_BF16;
    bool bad = bf ? launch_inputs(ctx->stream, (__nv_bfloat16 *)qh, (__nv_bfloat16 *)kh, (__nv_bfloat16 *)vh, q, k, v,
                                  nq, B, n_kv, S, hd, kv_stride, (int64_t)batch_stride)
                  : launch_inputs(ctx->stream, (__half *)qh, (__half *)kh, (__half *)vh, q, k, v, nq, B, n_kv, S, hd,
                                  kv_stride, (int64_t)batch_stride);
    if (bad) return -1;

    /* by-value scalars: read by cudnnBackendExecute when it launches */
    float scale = (float)(1.0 / sqrt((double)hd));
    float neginf = g_version >= 91000 ? -INFINITY : -FLT_MAX; /* older cuDNN wants the lowest finite value */
    int32_t skv = (int32_t)S, sq = T;
    int64_t uids[8] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_NEGINF, UID_SKV, UID_SQ};
    void *ptrs[8] = {qh, kh, vh, oh, &scale, &neginf, &skv, &sq};
    const int64_t n_ptrs = p0 > 0 ? 8 : 6; /* the s_kv / s_q scalars exist only in the bottom-right graph */

    cudnnBackendDescriptor_t pack = nullptr;
    const char *what = "cudnnSetStream";
    cudnnStatus_t st = cudnnSetStream(g_handle, ctx->stream);
    if (st == CUDNN_STATUS_SUCCESS) {
        what = "variant pack";
        st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    }
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n_ptrs, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n_ptrs, ptrs);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(pack);
    if (st == CUDNN_STATUS_SUCCESS) {
        what = "cudnnBackendExecute";
        st = cudnnBackendExecute(g_handle, e->plan, pack);
    }
    if (pack) cudnnBackendDestroyDescriptor(pack);
    if (st != CUDNN_STATUS_SUCCESS) {
        /* the copies above are simply unused; the own kernels recompute from q, k, v */
        char why[400], last[256] = {0};
        cudnnGetLastErrorString(last, sizeof last);
        snprintf(why, sizeof why, "%s: %s%s%s", what, cudnnGetErrorString(st), last[0] ? " - " : "", last);
        log_unsupported(key, why);
        release(e);
        return 1;
    }
    bad = bf ? launch_output(ctx->stream, out, (const __nv_bfloat16 *)oh, nq)
             : launch_output(ctx->stream, out, (const __half *)oh, nq);
    return bad ? -1 : 0;
}

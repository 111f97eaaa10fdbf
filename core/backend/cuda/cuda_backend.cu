/* cuda_backend.cu — pb_ops_cuda: device set-up, the three op tables (f32 / f16 / bf16
 * weight storage), device memory with peak accounting, copies, sticky error reporting and
 * backend scratch.
 *
 * Everything is queued on one non-blocking stream in call order; the only points where the
 * host waits are upload, upload_weights, download and sync, which is also where a failure
 * recorded inside an op (or a kernel fault the stream reports) comes back as a pb_err. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <unordered_map>

static pb_cuda_ctx g_ctx;
static bool g_ready;           /* g_ctx is set up */
static std::mutex g_init_mu;

pb_cuda_ctx *pb_cuda_ctx_get(void) { return g_ready ? &g_ctx : NULL; }

/* ---- sticky errors -------------------------------------------------------------------------- */

static std::mutex g_err_mu;
static bool g_err_set;
static char g_err_msg[900];    /* leaves room in pb_err.msg for a caller's prefix */

void pb_cuda_fail(const char *file, int line, const char *what, const char *detail) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    if (g_err_set) return;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    /* "cudaMemcpyAsync(dst, src, ...)" -> "cudaMemcpyAsync": the call's name is enough. */
    int wlen = (int)strcspn(what, "(");
    snprintf(g_err_msg, sizeof g_err_msg, "cuda: %s:%d: %.*s: %s", base, line, wlen, what,
             detail ? detail : "failed");
    g_err_set = true;
}

int pb_cuda_take_error(pb_err *err) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    if (!g_err_set) return 0;
    g_err_set = false;
    return pb_err_set(err, "%s", g_err_msg);
}

/* Waits for the stream; a fault of an earlier kernel surfaces here, so the message says how
 * to find which one. */
static void stream_wait(void) {
    cudaError_t e = cudaStreamSynchronize(g_ctx.stream);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        char detail[400];
        snprintf(detail, sizeof detail, "%s (queued work failed; CUDA_LAUNCH_BLOCKING=1 names the kernel)",
                 cudaGetErrorString(e));
        pb_cuda_fail(__FILE__, __LINE__, "cudaStreamSynchronize", detail);
    }
}

/* ---- memory accounting ------------------------------------------------------------------------ */

static std::mutex g_mem_mu;
static std::unordered_map<void *, size_t> g_sizes; /* pointer -> bytes asked for, of every live alloc */
static int64_t g_mem_cur, g_mem_peak;

static void mem_add(int64_t bytes) {
    g_mem_cur += bytes;
    if (g_mem_cur > g_mem_peak) g_mem_peak = g_mem_cur;
}

static void *cuda_alloc(size_t bytes, pb_err *err) {
    void *p = NULL;
    /* cudaMalloc(0) gives NULL, which callers read as failure: one byte instead. */
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is not sticky: keep it out of later launch checks */
        size_t fr = 0, tot = 0;
        (void)cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        pb_err_set(err, "cuda: cannot allocate %zu bytes (%.1f MiB) of device memory: %s (%.0f MiB free of %.0f)",
                   bytes, bytes / 1048576.0, cudaGetErrorString(e), fr / 1048576.0, tot / 1048576.0);
        return NULL;
    }
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_sizes[p] = bytes;
    mem_add((int64_t)bytes);
    return p;
}

static void cuda_free(void *p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> lock(g_mem_mu);
        auto it = g_sizes.find(p);
        if (it == g_sizes.end()) {
            pb_cuda_fail(__FILE__, __LINE__, "free", "pointer was not allocated by this backend (or freed twice)");
            return;
        }
        g_mem_cur -= (int64_t)it->second;
        g_sizes.erase(it);
    }
    /* cudaFree waits for the device, so work still queued on p finishes first. */
    PB_CU(cudaFree(p));
}

static int64_t cuda_mem_peak(void) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    return g_mem_peak;
}

static void cuda_mem_reset_peak(void) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_mem_peak = g_mem_cur;
}

/* ---- scratch ---------------------------------------------------------------------------------- */

static void *g_scratch[PB_CS_COUNT];
static size_t g_scratch_bytes[PB_CS_COUNT];

void *pb_cuda_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= PB_CS_COUNT) {
        pb_cuda_fail(__FILE__, __LINE__, "pb_cuda_scratch", "no such slot");
        return NULL;
    }
    if (g_scratch[slot] && g_scratch_bytes[slot] >= bytes) return g_scratch[slot];
    /* Grow by at least 1/4 so that a slowly rising size does not reallocate every call. */
    size_t want = bytes + bytes / 4;
    if (want < bytes) want = bytes;
    if (want < 256) want = 256;
    if (g_scratch[slot]) {
        /* queued kernels may still read the old buffer */
        stream_wait();
        if (PB_CU(cudaFree(g_scratch[slot]))) return NULL;
        std::lock_guard<std::mutex> lock(g_mem_mu);
        g_mem_cur -= (int64_t)g_scratch_bytes[slot];
        g_scratch[slot] = NULL;
        g_scratch_bytes[slot] = 0;
    }
    void *p = NULL;
    if (PB_CU(cudaMalloc(&p, want))) return NULL;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_scratch[slot] = p;
    g_scratch_bytes[slot] = want;
    mem_add((int64_t)want);
    return p;
}

/* ---- copies ----------------------------------------------------------------------------------- */

static int cuda_upload(void *dst, const void *src, size_t bytes, pb_err *err) {
    if (bytes) {
        /* Waiting keeps the contract of the CPU backend: src may be reused once this returns
         * (a pinned src would otherwise still be read by the copy). The driver uploads at the
         * start of a pass, where the stream is idle, so the wait costs nothing. */
        if (!PB_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_ctx.stream))) stream_wait();
    }
    return pb_cuda_take_error(err);
}

static int cuda_download(void *dst, const void *src, size_t bytes, pb_err *err) {
    if (bytes) PB_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_ctx.stream));
    stream_wait();
    return pb_cuda_take_error(err);
}

static void cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height) {
    if (width == 0 || height == 0) return;
    PB_CU(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice, g_ctx.stream));
}

static int cuda_sync(pb_err *err) {
    stream_wait();
    return pb_cuda_take_error(err);
}

/* Weights are converted on the host (the same rounding as every other path of prunebench:
 * pb_f32_to_f16 / pb_f32_to_bf16) into two pinned staging buffers in turn, so that
 * converting one chunk overlaps copying the previous one. */
#define STAGE_BYTES ((size_t)8 << 20)

static std::mutex g_stage_mu;
static void *g_stage[2];
static bool g_stage_pinned;
static cudaEvent_t g_stage_done[2];
static bool g_stage_events;

template <typename T> static inline T host_round(float f);
template <> inline __half host_round<__half>(float f) {
    __half_raw r;
    r.x = pb_f32_to_f16(f);
    return __half(r);
}
template <> inline __nv_bfloat16 host_round<__nv_bfloat16>(float f) {
    __nv_bfloat16_raw r;
    r.x = pb_f32_to_bf16(f);
    return __nv_bfloat16(r);
}

template <typename T> static int upload_weights_t(void *dst, const float *src, size_t n, pb_err *err) {
    if (n > SIZE_MAX / sizeof(T)) return pb_err_set(err, "cuda: upload of %zu weights overflows", n);
    if (n == 0) return pb_cuda_take_error(err);
    std::lock_guard<std::mutex> lock(g_stage_mu);
    if (!g_stage[0]) {
        g_stage_pinned = true;
        for (int i = 0; i < 2; i++)
            if (cudaMallocHost(&g_stage[i], STAGE_BYTES) != cudaSuccess) {
                (void)cudaGetLastError();
                g_stage_pinned = false;
                break;
            }
        if (!g_stage_pinned) {
            /* pageable fallback: slower copies, same result */
            for (int i = 0; i < 2; i++) {
                if (g_stage[i]) (void)cudaFreeHost(g_stage[i]);
                g_stage[i] = malloc(STAGE_BYTES);
            }
            if (!g_stage[0] || !g_stage[1]) {
                free(g_stage[0]);
                free(g_stage[1]);
                g_stage[0] = g_stage[1] = NULL;
                return pb_err_set(err, "cuda: out of host memory for the weight staging buffers");
            }
        }
    }
    if (!g_stage_events) {
        for (int i = 0; i < 2; i++)
            if (!g_stage_done[i] && PB_CU(cudaEventCreateWithFlags(&g_stage_done[i], cudaEventDisableTiming)))
                return pb_cuda_take_error(err);
        g_stage_events = true;
    }
    const size_t chunk = STAGE_BYTES / sizeof(T);
    T *d = (T *)dst;
    for (size_t i0 = 0, k = 0; i0 < n; i0 += chunk, k ^= 1) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        /* the copy that last read this buffer must be done before it is overwritten */
        if (PB_CU(cudaEventSynchronize(g_stage_done[k]))) break;
        T *h = (T *)g_stage[k];
        for (size_t j = 0; j < m; j++) h[j] = host_round<T>(src[i0 + j]);
        if (PB_CU(cudaMemcpyAsync(d + i0, h, m * sizeof(T), cudaMemcpyHostToDevice, g_ctx.stream))) break;
        if (PB_CU(cudaEventRecord(g_stage_done[k], g_ctx.stream))) break;
    }
    stream_wait();
    return pb_cuda_take_error(err);
}

template <> int upload_weights_t<float>(void *dst, const float *src, size_t n, pb_err *err) {
    if (n > SIZE_MAX / sizeof(float)) return pb_err_set(err, "cuda: upload of %zu weights overflows", n);
    return cuda_upload(dst, src, n * sizeof(float), err);
}

extern "C" {
static int upload_weights_f32(void *dst, const float *src, size_t n, pb_err *err) {
    return upload_weights_t<float>(dst, src, n, err);
}
static int upload_weights_f16(void *dst, const float *src, size_t n, pb_err *err) {
    return upload_weights_t<__half>(dst, src, n, err);
}
static int upload_weights_bf16(void *dst, const float *src, size_t n, pb_err *err) {
    return upload_weights_t<__nv_bfloat16>(dst, src, n, err);
}
}

/* ---- the tables ------------------------------------------------------------------------------- */

/* Filled by name at set-up, so that a member added to pb_ops later starts as NULL here;
 * every backward entry stays NULL: the backward pass on the GPU is a later issue. */
static pb_ops g_tables[3];

typedef void (*linear_fn)(float *, const float *, const void *, const float *, int, int, int, bool);
typedef void (*embedding_fn)(float *, const void *, const int32_t *, int, int);
typedef int (*upload_weights_fn)(void *, const float *, size_t, pb_err *);
typedef void (*attention_fn)(float *, const float *, const float *, const float *, int, int, int, int, int, int, int,
                             size_t);

static void fill_table(pb_ops *t, pb_dtype wt, linear_fn linear, embedding_fn embedding, upload_weights_fn uw,
                       attention_fn attention) {
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->device = true;
    t->wtype = wt;
    t->alloc = cuda_alloc;
    t->free = cuda_free;
    t->upload = cuda_upload;
    t->download = cuda_download;
    t->upload_weights = uw;
    t->copy2d = cuda_copy2d;
    t->sync = cuda_sync;
    t->mem_peak = cuda_mem_peak;
    t->mem_reset_peak = cuda_mem_reset_peak;
    t->linear = linear;
    t->rmsnorm = pb_cuda_rmsnorm;
    t->rope = pb_cuda_rope;
    t->kv_store = pb_cuda_kv_store;
    t->attention = attention;
    t->swiglu = pb_cuda_swiglu;
    t->add = pb_cuda_add;
    t->embedding = embedding;
    t->scale = pb_cuda_scale;
    t->dropout = pb_cuda_dropout;
    t->token_nll = pb_cuda_token_nll;
}

static void fill_tables(void) {
    fill_table(&g_tables[PB_DT_F32], PB_DT_F32, pb_cuda_linear_f32, pb_cuda_embedding_f32, upload_weights_f32,
               pb_cuda_attention);
    fill_table(&g_tables[PB_DT_F16], PB_DT_F16, pb_cuda_linear_f16, pb_cuda_embedding_f16, upload_weights_f16,
               pb_cuda_attention_f16);
    fill_table(&g_tables[PB_DT_BF16], PB_DT_BF16, pb_cuda_linear_bf16, pb_cuda_embedding_bf16, upload_weights_bf16,
               pb_cuda_attention_bf16);
}

/* ---- set-up ----------------------------------------------------------------------------------- */

static void cuda_release_all(void) {
    /* At exit, after the last op; errors are ignored (the driver reclaims everything anyway). */
    if (!g_ready) return;
    (void)cudaStreamSynchronize(g_ctx.stream);
    pb_cuda_linear_release();
    for (int i = 0; i < PB_CS_COUNT; i++)
        if (g_scratch[i]) (void)cudaFree(g_scratch[i]);
    for (int i = 0; i < 2; i++) {
        if (g_stage[i]) {
            if (g_stage_pinned) (void)cudaFreeHost(g_stage[i]);
            else free(g_stage[i]);
        }
        if (g_stage_done[i]) (void)cudaEventDestroy(g_stage_done[i]);
    }
    if (g_ctx.lt_workspace) (void)cudaFree(g_ctx.lt_workspace);
    if (g_ctx.lt) (void)cublasLtDestroy(g_ctx.lt);
    if (g_ctx.stream) (void)cudaStreamDestroy(g_ctx.stream);
    g_ready = false;
}

/* Sets up g_ctx; fills msg (one line) and returns -1 on failure. */
static int cuda_init(char *msg, size_t cap) {
#define INIT_RT(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            (void)cudaGetLastError();                                                              \
            snprintf(msg, cap, "--device cuda: %s failed: %s", #call, cudaGetErrorString(e_));     \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        (void)cudaGetLastError();
        snprintf(msg, cap, "--device cuda: no CUDA device (cudaGetDeviceCount: %s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return -1;
    }
    pb_cuda_ctx c;
    memset(&c, 0, sizeof c);
    INIT_RT(cudaGetDevice(&c.device));
    INIT_RT(cudaSetDevice(c.device));
    int v = 0;
    INIT_RT(cudaDeviceGetAttribute(&c.sm_count, cudaDevAttrMultiProcessorCount, c.device));
    INIT_RT(cudaDeviceGetAttribute(&c.cc_major, cudaDevAttrComputeCapabilityMajor, c.device));
    INIT_RT(cudaDeviceGetAttribute(&c.cc_minor, cudaDevAttrComputeCapabilityMinor, c.device));
    INIT_RT(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, c.device));
    c.smem_per_block_optin = (size_t)v;
    cudaDeviceProp prop;
    INIT_RT(cudaGetDeviceProperties(&prop, c.device));
    snprintf(c.name, sizeof c.name, "%s", prop.name);
    c.total_mem = prop.totalGlobalMem;
    cudaError_t pe = pb_cuda_probe_kernels();
    if (pe != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(msg, cap,
                 "--device cuda: %s (sm_%d%d) cannot run this build's kernels (%s): reconfigure with "
                 "-DPB_CUDA_ARCHS=%d%d",
                 c.name, c.cc_major, c.cc_minor, cudaGetErrorString(pe), c.cc_major, c.cc_minor);
        return -1;
    }
    INIT_RT(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
    cublasStatus_t s = cublasLtCreate(&c.lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, cap, "--device cuda: cublasLtCreate failed: %s", cublasLtGetStatusName(s));
        (void)cudaStreamDestroy(c.stream);
        return -1;
    }
    c.lt_workspace_bytes = (size_t)32 << 20;
    e = cudaMalloc(&c.lt_workspace, c.lt_workspace_bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(msg, cap, "--device cuda: cannot allocate the 32 MiB cuBLASLt workspace: %s",
                 cudaGetErrorString(e));
        (void)cublasLtDestroy(c.lt);
        (void)cudaStreamDestroy(c.stream);
        return -1;
    }
    const char *gemv = getenv("PB_CUDA_GEMV");
    c.gemv = !(gemv && strcmp(gemv, "0") == 0);
    {
        std::lock_guard<std::mutex> lock(g_mem_mu);
        mem_add((int64_t)c.lt_workspace_bytes);
    }
    g_ctx = c;
    return 0;
#undef INIT_RT
}

extern "C" const pb_ops *pb_ops_cuda(pb_dtype wtype, pb_err *err) {
    static int state;          /* 0 not tried, 1 ready, -1 failed (the same message every time) */
    static char fail_msg[512];
    if ((int)wtype < 0 || (int)wtype > 2) {
        pb_err_set(err, "--device cuda: unknown weight type %d", (int)wtype);
        return NULL;
    }
    std::lock_guard<std::mutex> lock(g_init_mu);
    if (state == 0) {
        if (cuda_init(fail_msg, sizeof fail_msg) == 0) {
            fill_tables();
            g_ready = true;
            state = 1;
            atexit(cuda_release_all);
            pb_log(PB_LOG_DEBUG, "cuda: %s (sm_%d%d, %d SMs, %.1f GiB), decode GEMV %s", g_ctx.name, g_ctx.cc_major,
                   g_ctx.cc_minor, g_ctx.sm_count, g_ctx.total_mem / 1073741824.0, g_ctx.gemv ? "on" : "off");
        } else {
            state = -1;
        }
    }
    if (state < 0) {
        pb_err_set(err, "%s", fail_msg);
        return NULL;
    }
    return &g_tables[wtype];
}

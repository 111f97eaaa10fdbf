/* pb_base.h — errors, check macros, arena allocator, file mapping and logging.
 *
 * Library code never exits: every fallible function returns 0 on success and -1 on
 * failure after filling a pb_err with one line of context ("FILE: what went wrong").
 * The CLI prints that line as "prunebench: error: <msg>" and exits 1. */
#ifndef PB_BASE_H
#define PB_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- errors ---------------------------------------------------------------------- */

typedef struct {
    char msg[1024];  /* one line, no trailing newline */
    const char *src_file; /* where in our code the error was raised (for --debug) */
    int src_line;
} pb_err;

/* Sets the message (printf-style) and returns -1, so callers can `return pb_err_set(...)`. */
int pb_err_setf(pb_err *e, const char *src_file, int src_line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define pb_err_set(e, ...) pb_err_setf((e), __FILE__, __LINE__, __VA_ARGS__)

/* Prefixes an existing message with more context ("model.safetensors: " + msg). */
int pb_err_prefix(pb_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Propagate a failure: evaluates `call`; on non-zero returns -1 (the callee filled err). */
#define PB_TRY(call) do { if ((call) != 0) return -1; } while (0)

/* Checks allocation results; on NULL fills err with file:line and returns -1. */
#define PB_CHECK_ALLOC(ptr, e) do { if ((ptr) == NULL) \
        return pb_err_set((e), "out of memory at %s:%d", __FILE__, __LINE__); } while (0)

/* Internal invariant that must hold whatever the input (a programming error otherwise). */
#define PB_ASSERT(cond) do { if (!(cond)) pb_panic(__FILE__, __LINE__, #cond); } while (0)
void pb_panic(const char *file, int line, const char *what) __attribute__((noreturn));

/* ---- checked allocation ------------------------------------------------------------ */

/* calloc with overflow-checked n*size; returns NULL on overflow or OOM. */
void *pb_calloc(size_t n, size_t size);
/* Multiplies with overflow detection: returns false when a*b does not fit in size_t. */
bool pb_mul_ok(size_t a, size_t b, size_t *out);

/* ---- arena --------------------------------------------------------------------------
 * One arena per object (a model, a tokenizer): many allocations, one free. Blocks are
 * chained so earlier pointers stay valid; every allocation is 64-byte aligned (AVX-512
 * loads, cache lines). */

typedef struct pb_arena_block pb_arena_block;
typedef struct {
    pb_arena_block *head;
    size_t block_size;   /* default size of new blocks */
    size_t total;        /* bytes handed out, for memory reports */
} pb_arena;

void  pb_arena_init(pb_arena *a, size_t block_size);
void *pb_arena_alloc(pb_arena *a, size_t bytes);               /* zeroed; NULL on OOM */
void *pb_arena_alloc_n(pb_arena *a, size_t n, size_t size);    /* overflow-checked */
char *pb_arena_strdup(pb_arena *a, const char *s);
char *pb_arena_strndup(pb_arena *a, const char *s, size_t n);
void  pb_arena_free(pb_arena *a);

/* ---- files ------------------------------------------------------------------------ */

/* A read-only (or private copy-on-write) memory map of a whole file. */
typedef struct {
    const char *path;   /* owned copy */
    uint8_t *data;
    size_t size;
    bool writable;      /* MAP_PRIVATE with PROT_WRITE: in-place edits never reach the file */
} pb_mmap;

int  pb_mmap_open(pb_mmap *m, const char *path, bool copy_on_write, pb_err *err);
void pb_mmap_close(pb_mmap *m);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int pb_file_read_all(const char *path, char **out, size_t *size, pb_err *err);
bool pb_file_exists(const char *path);
bool pb_is_dir(const char *path);
/* Joins dir and name into a malloc'd path. */
char *pb_path_join(const char *dir, const char *name);
/* mkdir -p; *created tells whether the last component was made by this call. */
int pb_mkdir_p(const char *dir, bool *created, pb_err *err);
/* Writes n bytes to path through a temporary file in the same folder, synced and renamed
 * into place: readers see the old file or the whole new one. */
int pb_file_write_atomic(const char *path, const void *data, size_t n, pb_err *err);
/* Removes from dir the temporary files ("NAME.pbtmp<pid>...") whose writing process is gone:
 * what a killed run leaves; files of a live writer (a shard beside us) stay. */
void pb_remove_stale_tmp(const char *dir);

/* ---- logging ---------------------------------------------------------------------- */

typedef enum { PB_LOG_ERROR = 0, PB_LOG_WARN = 1, PB_LOG_INFO = 2, PB_LOG_DEBUG = 3 } pb_log_level;
extern int pb_log_verbosity; /* messages at or below this level go to stderr; default INFO */
void pb_log(pb_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- progress -------------------------------------------------------------------------
 * "label: done/total (rate unit/s, ETA 1m23s)" on stderr, redrawn at most every 0.5 s while
 * stderr is a terminal, and as plain lines every 10 s otherwise (logs, CI). Silent when
 * pb_log_verbosity < PB_LOG_INFO (-q). */
typedef struct {
    const char *label, *unit;
    int64_t total, done;
    double t0, last;
    bool tty, printed;
} pb_progress;

void pb_progress_start(pb_progress *p, const char *label, const char *unit, int64_t total);
void pb_progress_update(pb_progress *p, int64_t done);
void pb_progress_end(pb_progress *p);

/* ---- hashing ----------------------------------------------------------------------- */

/* sha256 of a whole file as 64 lowercase hex digits + NUL (OpenSSL's EVP digest). */
int pb_sha256_file(const char *path, char hex[65], pb_err *err);
/* sha256 of a buffer, same format. */
void pb_sha256_hex(const void *data, size_t n, char hex[65]);

/* ---- numbers ------------------------------------------------------------------------ */

/* fp16 / bf16 conversions: pb_f16_to_f32, pb_bf16_to_f32, pb_f32_to_f16, pb_f32_to_bf16 */
#include "pb_half.h"

double pb_time_now(void);          /* monotonic seconds */

/* Counter-based random numbers: splitmix64 (Steele, Lea, Flood 2014). pb_mix64 is its
 * bijective finaliser; hashing (key + index) gives the same value for an element however
 * the work is split or resumed, which is what dropout masks and seeded permutations need. */
static inline uint64_t pb_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t pb_rng_next(uint64_t *state) { return pb_mix64(*state += 0x9e3779b97f4a7c15ull); }
/* uniform in [0, 1) with 53 random bits */
static inline double pb_rng_uniform(uint64_t *state) { return (double)(pb_rng_next(state) >> 11) * 0x1.0p-53; }

#endif

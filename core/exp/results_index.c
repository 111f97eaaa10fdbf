/* results_index.c — which runs are finished, and the experiment's index.h5: one row per run
 * file of the folder in a compound "summary" dataset that h5py turns into a numpy record
 * array and pandas into a DataFrame (columns in results.h and results/README.md).
 *
 * Decisions: a final-named file that does not open or has no done/failed status counts as
 * not finished for pb_result_exists (the rerun then writes it again and its rename replaces
 * the bad file), but is an error naming it for the index: the runner never leaves such a
 * file, so one means damage the user must see rather than a silently missing row. */
#include "results_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static hid_t open_ro(const char *path) {
    pb_h5_quiet();
    hid_t fapl = pb_h5_fapl();
    if (fapl < 0) return -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    hid_t kept = pb_h5_keep(f < 0 ? -1 : 0);
    H5Pclose(fapl);
    pb_h5_restore(kept);
    return f;
}

static bool status_complete(const char *s) {
    return !strcmp(s, "done") || !strcmp(s, "failed");
}

bool pb_result_exists(const char *dir, const char *run_id) {
    if (!dir || !pb_h5_name_ok(run_id)) return false;
    size_t n = strlen(dir) + strlen(run_id) + 8;
    char *path = malloc(n);
    if (!path) return false;
    snprintf(path, n, "%s/%s.h5", dir, run_id);
    bool ok = false;
    if (pb_file_exists(path)) {
        hid_t f = open_ro(path);
        char *status = NULL, why[256];
        if (f >= 0 && pb_h5_read_str(f, "status", &status, why, sizeof why) == 0) ok = status_complete(status);
        free(status);
        if (f >= 0) H5Fclose(f);
    }
    free(path);
    return ok;
}

/* ---- one summary row per run file ----------------------------------------------------------- */

static const char *const PPL_SETS[] = {"wikitext2", "ptb", "c4", "tinystories"};
static const char *const TASKS[] = {"boolq",    "piqa",          "hellaswag", "winogrande",
                                    "arc_easy", "arc_challenge", "openbookqa"};
#define N_PPL 4
#define N_TASKS 7

typedef struct {
    char *run_id, *model, *method, *criterion, *granularity, *status;   /* malloc'd */
    double ratio, native;
    int32_t num_blocks;
    int64_t seed, params_before, params_after, params_after_ne;
    double ppl[N_PPL], acc[N_TASKS], acc_mean, latency_ms, throughput;
} row;

typedef enum { C_STR, C_F64, C_I32, C_I64 } col_kind;
typedef struct {
    const char *name;
    col_kind kind;
    size_t off;   /* in row */
} column;

/* The summary's columns in results.h's order. */
static const column COLS[] = {
    {"run_id", C_STR, offsetof(row, run_id)},
    {"model", C_STR, offsetof(row, model)},
    {"method", C_STR, offsetof(row, method)},
    {"criterion", C_STR, offsetof(row, criterion)},
    {"granularity", C_STR, offsetof(row, granularity)},
    {"ratio", C_F64, offsetof(row, ratio)},
    {"native", C_F64, offsetof(row, native)},
    {"num_blocks", C_I32, offsetof(row, num_blocks)},
    {"seed", C_I64, offsetof(row, seed)},
    {"status", C_STR, offsetof(row, status)},
    {"params_before", C_I64, offsetof(row, params_before)},
    {"params_after", C_I64, offsetof(row, params_after)},
    {"params_after_no_embed", C_I64, offsetof(row, params_after_ne)},
    {"ppl_wikitext2", C_F64, offsetof(row, ppl[0])},
    {"ppl_ptb", C_F64, offsetof(row, ppl[1])},
    {"ppl_c4", C_F64, offsetof(row, ppl[2])},
    {"ppl_tinystories", C_F64, offsetof(row, ppl[3])},
    {"acc_boolq", C_F64, offsetof(row, acc[0])},
    {"acc_piqa", C_F64, offsetof(row, acc[1])},
    {"acc_hellaswag", C_F64, offsetof(row, acc[2])},
    {"acc_winogrande", C_F64, offsetof(row, acc[3])},
    {"acc_arc_easy", C_F64, offsetof(row, acc[4])},
    {"acc_arc_challenge", C_F64, offsetof(row, acc[5])},
    {"acc_openbookqa", C_F64, offsetof(row, acc[6])},
    {"acc_mean", C_F64, offsetof(row, acc_mean)},
    {"latency_ms", C_F64, offsetof(row, latency_ms)},
    {"throughput", C_F64, offsetof(row, throughput)},
};
#define N_COLS (sizeof COLS / sizeof *COLS)

static void row_free(row *w) {
    free(w->run_id);
    free(w->model);
    free(w->method);
    free(w->criterion);
    free(w->granularity);
    free(w->status);
}

/* Child group name of loc: 1 absent, 0 opened (*g), -1 error. */
static int open_opt(hid_t loc, const char *name, hid_t *g) {
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    if (ex <= 0) return ex < 0 ? -1 : 1;
    *g = H5Gopen2(loc, name, H5P_DEFAULT);
    return *g < 0 ? -1 : 0;
}

/* The attribute attr of group /top/name into *v (left as it is when absent). */
static int read_sub_f64(hid_t f, const char *top, const char *name, const char *attr, double *v, char *why,
                        size_t cap) {
    hid_t t, g;
    int rc = open_opt(f, top, &t);
    if (rc != 0) goto out;
    rc = open_opt(t, name, &g);
    if (rc == 0) {
        rc = pb_h5_read_f64(g, attr, v, why, cap) < 0 ? -1 : 0;
        H5Gclose(g);
    }
    H5Gclose(t);
out:
    if (rc < 0 && !why[0]) snprintf(why, cap, "cannot open /%s/%s", top, name);
    return rc < 0 ? -1 : 0;
}

/* H5Literate callback: the largest B of the batch_<B> groups into *(int *)best. */
static herr_t find_batch(hid_t g, const char *name, const H5L_info_t *info, void *best) {
    (void)g;
    (void)info;
    int b;
    char tail;
    if (sscanf(name, "batch_%d%c", &b, &tail) == 1 && b > *(int *)best) *(int *)best = b;
    return 0;
}

/* Fills w from an open run file; the message in why on failure. */
static int read_row(hid_t f, const char *stem, row *w, char *why, size_t cap) {
    char **strs[] = {&w->run_id, &w->model, &w->method, &w->criterion, &w->granularity, &w->status};
    const char *snames[] = {"run_id", "model", "method", "criterion", "granularity", "status"};
    for (int i = 0; i < 6; i++) {
        int rc = pb_h5_read_str(f, snames[i], strs[i], why, cap);
        if (rc == 1) snprintf(why, cap, "not a prunebench run file: no attribute '%s'", snames[i]);
        if (rc != 0) return -1;
    }
    if (strcmp(w->run_id, stem) != 0) {
        snprintf(why, cap, "run_id '%s' does not match the file name", w->run_id);
        return -1;
    }
    if (!status_complete(w->status)) {
        snprintf(why, cap, "status '%s' is neither done nor failed", w->status);
        return -1;
    }
    int64_t nb;
    const char *missing = NULL;
    int rc;
    if ((rc = pb_h5_read_f64(f, "ratio", &w->ratio, why, cap)) != 0) missing = "ratio";
    else if ((rc = pb_h5_read_f64(f, "native", &w->native, why, cap)) != 0) missing = "native";
    else if ((rc = pb_h5_read_i64(f, "num_blocks", &nb, why, cap)) != 0) missing = "num_blocks";
    else if ((rc = pb_h5_read_i64(f, "seed", &w->seed, why, cap)) != 0) missing = "seed";
    if (rc == 1) snprintf(why, cap, "not a prunebench run file: no attribute '%s'", missing);
    if (rc != 0) return -1;
    if (nb < INT32_MIN || nb > INT32_MAX) {
        snprintf(why, cap, "num_blocks %lld out of range", (long long)nb);
        return -1;
    }
    w->num_blocks = (int32_t)nb;

    hid_t g;
    rc = open_opt(f, "params", &g);
    if (rc == 0) {
        if (pb_h5_read_i64(g, "params_before", &w->params_before, why, cap) < 0 ||
            pb_h5_read_i64(g, "params_after", &w->params_after, why, cap) < 0 ||
            pb_h5_read_i64(g, "params_after_no_embed", &w->params_after_ne, why, cap) < 0)
            rc = -1;
        H5Gclose(g);
    }
    if (rc < 0) {
        if (!why[0]) snprintf(why, cap, "cannot open /params");
        return -1;
    }
    for (int i = 0; i < N_PPL; i++)
        if (read_sub_f64(f, "ppl", PPL_SETS[i], "ppl", &w->ppl[i], why, cap) < 0) return -1;
    for (int i = 0; i < N_TASKS; i++)
        if (read_sub_f64(f, "zeroshot", TASKS[i], "headline", &w->acc[i], why, cap) < 0) return -1;
    rc = open_opt(f, "zeroshot", &g);
    if (rc == 0) {
        rc = pb_h5_read_f64(g, "mean", &w->acc_mean, why, cap) < 0 ? -1 : 0;
        H5Gclose(g);
    }
    if (rc < 0) {
        if (!why[0]) snprintf(why, cap, "cannot open /zeroshot");
        return -1;
    }
    if (read_sub_f64(f, "latency", "batch_1", "decode_ms_per_token", &w->latency_ms, why, cap) < 0) return -1;
    rc = open_opt(f, "latency", &g);
    if (rc == 0) {
        int best = 0;
        hsize_t idx = 0;
        rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, find_batch, &best) < 0 ? -1 : 0;
        if (rc == 0 && best > 0) {
            char name[32];
            snprintf(name, sizeof name, "batch_%d", best);
            rc = read_sub_f64(f, "latency", name, "tokens_per_s", &w->throughput, why, cap);
        }
        H5Gclose(g);
    }
    if (rc < 0) {
        if (!why[0]) snprintf(why, cap, "cannot read /latency");
        return -1;
    }
    return 0;
}

/* Reads DIR/name (name = STEM.h5) into w. */
static int read_run(const char *dir, const char *name, row *w, pb_err *err) {
    row blank = {.params_before = -1, .params_after = -1, .params_after_ne = -1, .acc_mean = NAN, .latency_ms = NAN,
                 .throughput = NAN};
    for (int i = 0; i < N_PPL; i++) blank.ppl[i] = NAN;
    for (int i = 0; i < N_TASKS; i++) blank.acc[i] = NAN;
    *w = blank;
    char *path = pb_path_join(dir, name);
    PB_CHECK_ALLOC(path, err);
    char stem[512], why[512] = "";
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - 3), name);
    hid_t f = open_ro(path);
    int rc = 0;
    if (f < 0) rc = pb_h5_fail(err, path, "cannot open the run file");
    else if (read_row(f, stem, w, why, sizeof why) < 0) rc = pb_err_set(err, "%s: %s", path, why);
    if (f >= 0) H5Fclose(f);
    free(path);
    if (rc < 0) row_free(w);
    return rc;
}

static int by_run_id(const void *a, const void *b) {
    return strcmp(((const row *)a)->run_id, ((const row *)b)->run_id);
}

static bool is_run_file(const char *dir, const char *name) {
    size_t n = strlen(name);
    if (n <= 3 || strcmp(name + n - 3, ".h5") != 0 || !strcmp(name, "index.h5") || strstr(name, ".pbtmp")) return false;
    char *p = pb_path_join(dir, name);
    struct stat st;
    bool ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* ---- the index file ------------------------------------------------------------------------- */

/* Writes rows as the compound dataset "summary" of a new file path (*created: whether this
 * call made the file). Strings are fixed-length, NUL-padded to the longest value of their
 * column (numpy 'S' columns; at least 1 byte). */
static int write_index(const char *path, const row *rows, int n, bool *created, pb_err *err) {
    size_t off[N_COLS], width[N_COLS], size = 0;
    for (size_t c = 0; c < N_COLS; c++) {
        width[c] = COLS[c].kind == C_STR ? 1 : COLS[c].kind == C_I32 ? 4 : 8;
        for (int i = 0; COLS[c].kind == C_STR && i < n; i++) {
            size_t l = strlen(*(char *const *)((const char *)&rows[i] + COLS[c].off));
            if (l > width[c]) width[c] = l;
        }
        off[c] = size;
        size += width[c];
    }
    unsigned char *buf = calloc((size_t)n + 1, size);
    PB_CHECK_ALLOC(buf, err);
    for (int i = 0; i < n; i++)
        for (size_t c = 0; c < N_COLS; c++) {
            const char *src = (const char *)&rows[i] + COLS[c].off;
            unsigned char *dst = buf + (size_t)i * size + off[c];
            if (COLS[c].kind == C_STR) {
                const char *s = *(char *const *)src;
                memcpy(dst, s, strlen(s));
            } else {
                memcpy(dst, src, width[c]);
            }
        }
    hid_t type = H5Tcreate(H5T_COMPOUND, size), fapl = pb_h5_fapl(), file = -1, space = -1, d = -1;
    int rc = type >= 0 && fapl >= 0 ? 0 : -1;
    for (size_t c = 0; rc == 0 && c < N_COLS; c++) {
        hid_t t = COLS[c].kind == C_F64   ? H5T_NATIVE_DOUBLE
                  : COLS[c].kind == C_I32 ? H5T_NATIVE_INT32
                                          : H5T_NATIVE_INT64;
        hid_t st = -1;
        if (COLS[c].kind == C_STR) {
            st = H5Tcopy(H5T_C_S1);
            if (st < 0 || H5Tset_size(st, width[c]) < 0 || H5Tset_strpad(st, H5T_STR_NULLPAD) < 0 ||
                H5Tset_cset(st, H5T_CSET_UTF8) < 0)
                rc = -1;
            t = st;
        }
        if (rc == 0 && H5Tinsert(type, COLS[c].name, off[c], t) < 0) rc = -1;
        if (st >= 0) H5Tclose(st);
    }
    hsize_t dims[1] = {(hsize_t)n};
    /* exclusive: a name another process holds is never truncated (nor removed on failure) */
    if (rc == 0) file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    *created = file >= 0;
    if (file >= 0) space = H5Screate_simple(1, dims, NULL);
    if (space >= 0) d = H5Dcreate2(file, "summary", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || (n > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) ||
        H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        rc = -1;
    if (rc < 0) pb_h5_fail(err, path, "cannot write the index");
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) rc = pb_h5_fail(err, path, "cannot close the index");
    if (fapl >= 0) H5Pclose(fapl);
    if (type >= 0) H5Tclose(type);
    free(buf);
    return rc;
}

int pb_results_index(const char *dir, int *n_runs, pb_err *err) {
    *n_runs = 0;
    pb_h5_quiet();
    DIR *d = opendir(dir);
    if (!d) return pb_err_set(err, "%s: cannot open the results folder: %s", dir, strerror(errno));
    row *rows = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_run_file(dir, e->d_name)) continue;
        if (n == cap) {
            int nc = cap > INT32_MAX / 2 ? -1 : cap ? 2 * cap : 16;
            row *nr = nc > 0 ? realloc(rows, (size_t)nc * sizeof *nr) : NULL;
            if (!nr) {
                rc = pb_err_set(err, "%s: out of memory", dir);
                break;
            }
            rows = nr;
            cap = nc;
        }
        if (read_run(dir, e->d_name, &rows[n], err) < 0) rc = -1;
        else n++;
    }
    closedir(d);
    char *final = rc == 0 ? pb_path_join(dir, "index.h5") : NULL;
    char *tmp = final ? malloc(strlen(final) + 64) : NULL;
    if (rc == 0 && !tmp) rc = pb_err_set(err, "%s: out of memory", dir);
    if (rc == 0) {
        if (n > 1) qsort(rows, (size_t)n, sizeof *rows, by_run_id);   /* rows is NULL when n is 0 */
        /* pid and a random tag: shards on several machines of a cluster may rebuild one
         * folder's index at the same moment with equal pids */
        uint64_t tag = 0;
        if (getrandom(&tag, sizeof tag, 0) != (ssize_t)sizeof tag) tag = pb_mix64((uint64_t)(pb_time_now() * 1e9));
        snprintf(tmp, strlen(final) + 64, "%s.pbtmp%ld-%016llx", final, (long)getpid(), (unsigned long long)tag);
        bool created = false;
        rc = write_index(tmp, rows, n, &created, err);
        if (rc < 0 && created) unlink(tmp);
        else if (rc == 0) rc = pb_results_commit(tmp, final, err);
    }
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    free(rows);
    free(tmp);
    free(final);
    if (rc == 0) *n_runs = n;
    return rc;
}

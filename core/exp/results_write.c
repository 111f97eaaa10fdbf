/* results_write.c — writing one run's HDF5 file (layout in results.h and results/README.md).
 *
 * The file is written as DIR/<run_id>.h5.pbtmp<pid> and renamed to DIR/<run_id>.h5 only
 * after its status is set, HDF5 has flushed and closed it and the bytes are synced: a
 * reader (the index, a rerun's skip check, h5py) never meets a partial file under the final
 * name, and a killed run leaves only a temporary file, which everyone ignores. */
#include "results_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PB_VERSION
#define PB_VERSION "unknown"
#endif
#ifndef PB_GIT_REV
#define PB_GIT_REV "unknown"
#endif

static void result_free(pb_result *r) {
    free(r->tmp);
    free(r->final);
    free(r);
}

static int write_identity(pb_result *r, const pb_result_id *id) {
    char hw[512], now[32];
    pb_h5_hardware(hw, sizeof hw);
    pb_h5_iso_now(now);
    hid_t f = r->file;
    const char *s_names[] = {"run_id", "experiment", "label", "config", "model", "method", "criterion", "granularity"};
    const char *s_vals[] = {id->run_id, id->experiment, id->label, id->config_yaml, id->model, id->method,
                            id->criterion, id->granularity};
    for (size_t i = 0; i < sizeof s_names / sizeof *s_names; i++)
        if (pb_h5_attr_str(f, s_names[i], s_vals[i]) < 0) return -1;
    if (pb_h5_attr_f64(f, "ratio", id->ratio) < 0 || pb_h5_attr_f64(f, "native", id->native) < 0 ||
        pb_h5_attr_i64(f, "num_blocks", id->num_blocks) < 0 || pb_h5_attr_i64(f, "seed", id->seed) < 0)
        return -1;
    /* "running" never reaches a final-named file: end() overwrites it before the rename */
    if (pb_h5_attr_str(f, "status", "running") < 0 || pb_h5_attr_str(f, "prunebench_version", PB_VERSION) < 0 ||
        pb_h5_attr_str(f, "git_revision", PB_GIT_REV) < 0 || pb_h5_attr_str(f, "hardware", hw) < 0 ||
        pb_h5_attr_str(f, "started", now) < 0)
        return -1;
    return 0;
}

int pb_result_begin(pb_result **out, const char *dir, const pb_result_id *id, pb_err *err) {
    *out = NULL;
    if (!dir || !dir[0]) return pb_err_set(err, "results: no output folder given");
    if (!id || !pb_h5_name_ok(id->run_id) || !strcmp(id->run_id, "index") || id->run_id[0] == '.')
        return pb_err_set(err, "%s: invalid run id '%s' (it names the run's file)", dir,
                          id && id->run_id ? id->run_id : "");
    bool created;
    PB_TRY(pb_mkdir_p(dir, &created, err));
    pb_result *r = calloc(1, sizeof *r);
    PB_CHECK_ALLOC(r, err);
    r->file = -1;
    size_t n = strlen(dir) + strlen(id->run_id) + 48;
    r->final = malloc(n);
    r->tmp = malloc(n);
    if (!r->final || !r->tmp) {
        result_free(r);
        return pb_err_set(err, "%s: out of memory", dir);
    }
    snprintf(r->final, n, "%s/%s.h5", dir, id->run_id);
    snprintf(r->tmp, n, "%s.pbtmp%ld", r->final, (long)getpid());
    r->t0 = pb_time_now();
    pb_h5_quiet();
    hid_t fapl = pb_h5_fapl();
    if (fapl >= 0) r->file = H5Fcreate(r->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (r->file < 0) {
        pb_h5_fail(err, r->tmp, "cannot create the run file");
        if (fapl >= 0) H5Pclose(fapl);
        unlink(r->tmp);
        result_free(r);
        return -1;
    }
    H5Pclose(fapl);
    if (write_identity(r, id) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write the run attributes");
        pb_result_abort(r);
        return -1;
    }
    *out = r;
    return 0;
}

int pb_result_params(pb_result *r, int64_t before, int64_t after, int64_t before_ne, int64_t after_ne, pb_err *err) {
    hid_t g = pb_h5_group(r->file, "params");
    if (g < 0 || pb_h5_attr_i64(g, "params_before", before) < 0 || pb_h5_attr_i64(g, "params_after", after) < 0 ||
        pb_h5_attr_i64(g, "params_before_no_embed", before_ne) < 0 ||
        pb_h5_attr_i64(g, "params_after_no_embed", after_ne) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write /params");
        if (g >= 0) H5Gclose(g);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

/* kept_layers: the original layer indices that remain, i.e. all but the removed blocks.
 * The model had n_layers + (distinct removed blocks) layers. */
static int kept_layers(const int32_t *removed, int n_removed, int n_layers, int32_t **out, int *n_out, char *why,
                       size_t cap) {
    /* n_layers + n_removed bounds the original layer count, so it bounds every block index
     * before anything is allocated from one */
    int64_t bound = (int64_t)n_layers + n_removed;
    for (int i = 0; i < n_removed; i++) {
        const int32_t *s = removed + 3 * (size_t)i;
        if (s[0] < 0 || s[1] < 0 || s[1] > 4 || s[2] < 0 || s[0] >= bound) {
            snprintf(why, cap, "removed structure %d (%d, %d, %d) is not a {layer, kind 0..4, index}", i, s[0], s[1],
                     s[2]);
            return -1;
        }
    }
    bool *gone = calloc((size_t)bound + 1, sizeof *gone);
    int32_t *kept = malloc(((size_t)n_layers + 1) * sizeof *kept);
    if (!gone || !kept) {
        free(gone);
        free(kept);
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int n_blocks = 0;
    for (int i = 0; i < n_removed; i++) {
        const int32_t *s = removed + 3 * (size_t)i;
        if (s[1] != 0 || gone[s[0]]) continue;          /* only blocks (kind 0) remove a layer */
        gone[s[0]] = true;
        n_blocks++;
    }
    int n_orig = n_layers + n_blocks, k = 0;
    for (int l = 0; l < (int)bound; l++) {
        if (gone[l] && l >= n_orig) {
            snprintf(why, cap, "removed block %d is outside the %d original layers", l, n_orig);
            free(gone);
            free(kept);
            return -1;
        }
        if (!gone[l] && l < n_orig) kept[k++] = l;
    }
    free(gone);
    *out = kept;
    *n_out = k;
    return 0;
}

int pb_result_structure(pb_result *r, const int32_t *n_heads, const int32_t *n_kv, const int32_t *ffn, int n_layers,
                        const int32_t *removed, int n_removed, pb_err *err) {
    if (n_layers < 0 || n_removed < 0 || (n_layers > 0 && (!n_heads || !n_kv || !ffn)) || (n_removed > 0 && !removed))
        return pb_err_set(err, "%s: /structure: %d layers, %d removed structures, or their arrays missing", r->tmp,
                          n_layers, n_removed);
    char why[256];
    int32_t *kept;
    int n_kept;
    if (kept_layers(removed, n_removed, n_layers, &kept, &n_kept, why, sizeof why) < 0)
        return pb_err_set(err, "%s: /structure: %s", r->tmp, why);
    hsize_t dl[1] = {(hsize_t)n_layers}, dr[2] = {(hsize_t)n_removed, 3}, dk[1] = {(hsize_t)n_kept};
    hid_t g = pb_h5_group(r->file, "structure");
    int rc = g >= 0 && pb_h5_dataset(g, "n_heads", H5T_NATIVE_INT32, 1, dl, n_heads) >= 0 &&
                     pb_h5_dataset(g, "n_kv_heads", H5T_NATIVE_INT32, 1, dl, n_kv) >= 0 &&
                     pb_h5_dataset(g, "ffn_dim", H5T_NATIVE_INT32, 1, dl, ffn) >= 0 &&
                     pb_h5_dataset(g, "removed", H5T_NATIVE_INT32, 2, dr, removed) >= 0 &&
                     pb_h5_dataset(g, "kept_layers", H5T_NATIVE_INT32, 1, dk, kept) >= 0
                 ? 0 : -1;
    /* the kind codes are prune.h's pb_struct_kind; spelt out so that a reader needs no header */
    hid_t d = rc == 0 ? H5Dopen2(g, "removed", H5P_DEFAULT) : -1;
    if (rc == 0 && (d < 0 || pb_h5_attr_str(d, "kinds", "0 block, 1 attn, 2 mlp, 3 head, 4 channel") < 0 ||
                    pb_h5_attr_str(d, "columns", "layer, kind, index") < 0))
        rc = -1;
    if (rc < 0) pb_h5_fail(err, r->tmp, "cannot write /structure");
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    free(kept);
    return rc;
}

/* Opens (creating as needed) /top/name. A '/' in name becomes '_': a perplexity set may be
 * a file path, and '/' separates HDF5 path components. */
static hid_t child_group(pb_result *r, const char *top, const char *name) {
    char *safe = strdup(name);
    if (!safe) return -1;
    for (char *p = safe; *p; p++)
        if (*p == '/') *p = '_';
    hid_t t = pb_h5_group(r->file, top);
    if (t < 0) {
        free(safe);
        return -1;
    }
    hid_t g = pb_h5_group(t, safe);
    free(safe);
    hid_t kept = pb_h5_keep(g < 0 ? -1 : 0);
    H5Gclose(t);
    pb_h5_restore(kept);
    return g;
}

int pb_result_ppl(pb_result *r, const char *dataset, double ppl, double nll, double nll_stderr, int64_t tokens,
                  int64_t windows, int seq_len, pb_err *err) {
    if (!dataset || !dataset[0] || !strcmp(dataset, ".") || !strcmp(dataset, ".."))
        return pb_err_set(err, "%s: invalid dataset name '%s' for /ppl", r->tmp, dataset ? dataset : "");
    hid_t g = child_group(r, "ppl", dataset);
    if (g < 0 || pb_h5_attr_f64(g, "ppl", ppl) < 0 || pb_h5_attr_f64(g, "nll_mean", nll) < 0 ||
        pb_h5_attr_f64(g, "nll_stderr", nll_stderr) < 0 || pb_h5_attr_i64(g, "tokens", tokens) < 0 ||
        pb_h5_attr_i64(g, "windows", windows) < 0 || pb_h5_attr_i64(g, "seq_len", seq_len) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write /ppl/%s", dataset);
        if (g >= 0) H5Gclose(g);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

int pb_result_zeroshot(pb_result *r, const char *task, double acc, double acc_se, double acc_norm, double acc_norm_se,
                       double headline, int64_t n, pb_err *err) {
    if (!task || !task[0] || !strcmp(task, ".") || !strcmp(task, ".."))
        return pb_err_set(err, "%s: invalid task name '%s' for /zeroshot", r->tmp, task ? task : "");
    hid_t g = child_group(r, "zeroshot", task);
    if (g < 0 || pb_h5_attr_f64(g, "acc", acc) < 0 || pb_h5_attr_f64(g, "acc_stderr", acc_se) < 0 ||
        pb_h5_attr_f64(g, "acc_norm", acc_norm) < 0 || pb_h5_attr_f64(g, "acc_norm_stderr", acc_norm_se) < 0 ||
        pb_h5_attr_f64(g, "headline", headline) < 0 || pb_h5_attr_i64(g, "n", n) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write /zeroshot/%s", task);
        if (g >= 0) H5Gclose(g);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

int pb_result_zeroshot_mean(pb_result *r, double mean, pb_err *err) {
    hid_t g = pb_h5_group(r->file, "zeroshot");
    if (g < 0 || pb_h5_attr_f64(g, "mean", mean) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write /zeroshot mean");
        if (g >= 0) H5Gclose(g);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

int pb_result_latency(pb_result *r, int batch, double prefill_ms, double decode_ms_per_token, double tokens_per_s,
                      int64_t peak_bytes, pb_err *err) {
    if (batch <= 0) return pb_err_set(err, "%s: /latency: batch %d is not positive", r->tmp, batch);
    char name[32];
    snprintf(name, sizeof name, "batch_%d", batch);
    hid_t g = child_group(r, "latency", name);
    if (g < 0 || pb_h5_attr_f64(g, "prefill_ms", prefill_ms) < 0 ||
        pb_h5_attr_f64(g, "decode_ms_per_token", decode_ms_per_token) < 0 ||
        pb_h5_attr_f64(g, "tokens_per_s", tokens_per_s) < 0 || pb_h5_attr_i64(g, "peak_bytes", peak_bytes) < 0) {
        pb_h5_fail(err, r->tmp, "cannot write /latency/%s", name);
        if (g >= 0) H5Gclose(g);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

int pb_result_importance(pb_result *r, const char *name, const char *granularity, const double *scores, int rows,
                         int cols, pb_err *err) {
    if (!name) name = "scores";
    if (!pb_h5_name_ok(name)) return pb_err_set(err, "%s: /importance: invalid dataset name '%s'", r->tmp, name);
    if (rows < 0 || cols < 1 || (rows > 0 && !scores))
        return pb_err_set(err, "%s: /importance/%s: invalid shape (%d, %d)", r->tmp, name, rows, cols);
    /* one score per layer (depth kinds) is a vector; width kinds a (layers, units) matrix */
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t g = pb_h5_group(r->file, "importance"), d = -1;
    int rc = g >= 0 && pb_h5_dataset(g, name, H5T_NATIVE_DOUBLE, cols == 1 ? 1 : 2, dims, scores) >= 0 ? 0 : -1;
    /* the main table's granularity describes the group; every table carries its own */
    if (rc == 0 && granularity && !strcmp(name, "scores") && pb_h5_attr_str(g, "granularity", granularity) < 0) rc = -1;
    if (rc == 0 && granularity &&
        ((d = H5Dopen2(g, name, H5P_DEFAULT)) < 0 || pb_h5_attr_str(d, "granularity", granularity) < 0))
        rc = -1;
    if (rc < 0) pb_h5_fail(err, r->tmp, "cannot write /importance/%s", name);
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    return rc;
}

int pb_result_training(pb_result *r, const int64_t *step, const double *loss, const double *lr, const double *gnorm,
                       const double *val, int n, pb_err *err) {
    if (n < 0 || (n > 0 && (!step || !loss)))
        return pb_err_set(err, "%s: /training: %d points, or no steps / losses", r->tmp, n);
    /* lr, grad_norm and val_loss may be absent (NULL): written as NaN */
    double *nan = malloc(((size_t)n + 1) * sizeof *nan);
    PB_CHECK_ALLOC(nan, err);
    for (int i = 0; i < n; i++) nan[i] = NAN;
    hsize_t dims[1] = {(hsize_t)n};
    hid_t g = pb_h5_group(r->file, "training");
    int rc = g >= 0 && pb_h5_dataset(g, "step", H5T_NATIVE_INT64, 1, dims, step) >= 0 &&
                     pb_h5_dataset(g, "loss", H5T_NATIVE_DOUBLE, 1, dims, loss) >= 0 &&
                     pb_h5_dataset(g, "lr", H5T_NATIVE_DOUBLE, 1, dims, lr ? lr : nan) >= 0 &&
                     pb_h5_dataset(g, "grad_norm", H5T_NATIVE_DOUBLE, 1, dims, gnorm ? gnorm : nan) >= 0 &&
                     pb_h5_dataset(g, "val_loss", H5T_NATIVE_DOUBLE, 1, dims, val ? val : nan) >= 0
                 ? 0 : -1;
    if (rc < 0) pb_h5_fail(err, r->tmp, "cannot write /training");
    if (g >= 0) H5Gclose(g);
    free(nan);
    return rc;
}

/* fsync of the file's bytes, then of the folder so that the rename itself survives a crash
 * (the folder sync is best effort: some file systems refuse it). */
static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static void sync_parent(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    char *slash = strrchr(d, '/');
    if (slash) {
        *slash = 0;
        int fd = open(slash == d ? "/" : d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
    }
    free(d);
}

int pb_results_commit(const char *tmp, const char *final, pb_err *err) {
    if (sync_path(tmp) != 0 || rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return pb_err_set(err, "%s: cannot move the finished file into place: %s", final, strerror(e));
    }
    sync_parent(final);
    return 0;
}

int pb_result_end(pb_result *r, const char *error, pb_err *err) {
    if (!r) return pb_err_set(err, "results: no run file open");
    char now[32];
    pb_h5_iso_now(now);
    double secs = pb_time_now() - r->t0;
    hid_t f = r->file;
    if (pb_h5_attr_str(f, "status", error ? "failed" : "done") < 0 ||
        (error && pb_h5_attr_str(f, "error", error) < 0) ||
        pb_h5_attr_str(f, "finished", now) < 0 || pb_h5_attr_f64(f, "seconds", secs) < 0 ||
        H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
        pb_h5_fail(err, r->tmp, "cannot finish the run file");
        pb_result_abort(r);
        return -1;
    }
    r->file = -1;
    if (H5Fclose(f) < 0) {
        pb_h5_fail(err, r->tmp, "cannot close the run file");
        unlink(r->tmp);
        result_free(r);
        return -1;
    }
    int rc = pb_results_commit(r->tmp, r->final, err);
    result_free(r);
    return rc;
}

void pb_result_abort(pb_result *r) {
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    unlink(r->tmp);
    result_free(r);
}

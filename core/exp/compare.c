/* compare.c — loading what `prunebench compare` tabulates: the summary rows of each
 * experiment's index.h5, read column by column through one-member compound memory types
 * (so the column order, extra columns and fixed- or variable-length strings of whoever wrote
 * the file do not matter), after compare_check.c has vouched for the table's layout; the
 * label and error of each run come from its run file when the index lacks them
 * (compare_runs.c). */
#include "compare.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const pb_cmp_task_names[PB_CMP_TASKS] = {"boolq",    "piqa",          "hellaswag", "winogrande",
                                                      "arc_easy", "arc_challenge", "openbookqa"};

/* An index bigger than this is not an experiment summary (and would exhaust memory). */
#define MAX_ROWS 1000000
#define MAX_STR 65536

/* ---- rows ------------------------------------------------------------------------------- */

static int set_str(char **dst, const char *s) {
    char *v = strdup(s ? s : "");
    if (!v) return -1;
    free(*dst);
    *dst = v;
    return 0;
}

pb_cmp_row *pb_cmp_add_row(pb_cmp *c, int dir) {
    if (c->n_rows == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        pb_cmp_row *r = realloc(c->rows, (size_t)cap * sizeof *r);
        if (!r) return NULL;
        c->rows = r;
        c->cap = cap;
    }
    pb_cmp_row *r = &c->rows[c->n_rows];
    memset(r, 0, sizeof *r);
    r->dir = dir;
    char **strs[] = {&r->run_id, &r->label,  &r->model, &r->method, &r->criterion,
                     &r->granularity, &r->status, &r->error, &r->note};
    bool ok = true;
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) ok = set_str(strs[i], "") == 0 && ok;
    r->ratio = r->native = r->num_blocks = r->seed = NAN;
    r->params_before = r->params_after = r->params_after_ne = NAN;
    for (int i = 0; i < PB_CMP_MAX_PPL; i++) r->ppl[i] = NAN;
    for (int i = 0; i < PB_CMP_TASKS; i++) r->acc[i] = NAN;
    r->mean = r->latency_ms = r->throughput = NAN;
    c->n_rows++;   /* counted even when a string failed, so that pb_cmp_free releases it */
    return ok ? r : NULL;
}

int pb_cmp_ppl_index(pb_cmp *c, const char *name) {
    for (int i = 0; i < c->n_ppl; i++)
        if (strcmp(c->ppl_names[i], name) == 0) return i;
    if (c->n_ppl == PB_CMP_MAX_PPL) return -1;
    char *s = strdup(name);
    if (!s) return -1;
    c->ppl_names[c->n_ppl] = s;
    return c->n_ppl++;
}

void pb_cmp_free(pb_cmp *c) {
    if (!c) return;
    for (int i = 0; i < c->n_rows; i++) {
        pb_cmp_row *r = &c->rows[i];
        free(r->run_id), free(r->label), free(r->model), free(r->method), free(r->criterion);
        free(r->granularity), free(r->status), free(r->error), free(r->note);
    }
    free(c->rows);
    for (int i = 0; i < c->n_dirs; i++) free(c->dirs[i]);
    free(c->dirs);
    for (int i = 0; i < c->n_ppl; i++) free(c->ppl_names[i]);
    free(c);
}

/* ---- HDF5 columns ----------------------------------------------------------------------- */

/* Reads member `name` of the compound dataset d into out[n] as doubles (integers and floats
 * are converted by HDF5). */
static int read_num_column(hid_t d, const char *name, double *out) {
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(double));
    if (mt < 0) return -1;
    int rc = H5Tinsert(mt, name, 0, H5T_NATIVE_DOUBLE) >= 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0
                 ? 0
                 : -1;
    H5Tclose(mt);
    return rc;
}

/* Reads string member `name` (file type ft) into out[n] (malloc'd each). HDF5 does not
 * convert between fixed and variable length, nor between character sets: read each as the
 * file stores it. */
static int read_str_column(hid_t d, const char *name, hid_t ft, hsize_t n, char **out) {
    htri_t var = H5Tis_variable_str(ft);
    H5T_cset_t cset = H5Tget_cset(ft);
    if (var < 0 || cset == H5T_CSET_ERROR) return -1;
    size_t width = var ? sizeof(char *) : H5Tget_size(ft) + 1;
    if (!var && (width < 2 || width > MAX_STR)) return -1;
    hid_t st = H5Tcopy(H5T_C_S1), mt = -1;
    char *buf = pb_calloc((size_t)n ? (size_t)n : 1, width);
    int rc = -1;
    if (st < 0 || !buf) goto done;
    if (H5Tset_size(st, var ? H5T_VARIABLE : width) < 0 || H5Tset_cset(st, cset) < 0) goto done;
    if (!var && H5Tset_strpad(st, H5T_STR_NULLTERM) < 0) goto done;
    mt = H5Tcreate(H5T_COMPOUND, width);
    if (mt < 0 || H5Tinsert(mt, name, 0, st) < 0) goto done;
    if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) goto done;
    rc = 0;
    for (hsize_t i = 0; i < n; i++) {
        if (var) {
            char *v = ((char **)(void *)buf)[i];
            out[i] = strdup(v ? v : "");
            if (v) H5free_memory(v);
        } else {
            out[i] = strndup(buf + i * width, width - 1);
        }
        if (!out[i]) rc = -1;
    }
done:
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (st >= 0) H5Tclose(st);
    return rc;
}

/* ---- one index ---------------------------------------------------------------------------- */

static const char *const str_cols[] = {"run_id", "label", "model", "method", "criterion", "granularity", "status", "error"};
enum { N_STR_COLS = sizeof str_cols / sizeof *str_cols };

static char **str_field(pb_cmp_row *r, int k) {
    char **f[N_STR_COLS] = {&r->run_id, &r->label, &r->model, &r->method, &r->criterion, &r->granularity, &r->status, &r->error};
    return f[k];
}

/* Where numeric column `name` goes in a row (NULL: not a column compare uses); *pct: an
 * accuracy, stored x100. */
static double *num_field(pb_cmp *c, pb_cmp_row *r, const char *name, bool *pct, int *too_many) {
    *pct = false;
    struct { const char *n; double *f; } fixed[] = {
        {"ratio", &r->ratio}, {"native", &r->native}, {"num_blocks", &r->num_blocks}, {"seed", &r->seed},
        {"params_before", &r->params_before}, {"params_after", &r->params_after},
        {"params_after_no_embed", &r->params_after_ne}, {"latency_ms", &r->latency_ms}, {"throughput", &r->throughput},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(name, fixed[i].n) == 0) return fixed[i].f;
    if (strcmp(name, "acc_mean") == 0) {
        *pct = true;
        return &r->mean;
    }
    for (int t = 0; t < PB_CMP_TASKS; t++)
        if (strncmp(name, "acc_", 4) == 0 && strcmp(name + 4, pb_cmp_task_names[t]) == 0) {
            *pct = true;
            return &r->acc[t];
        }
    if (strncmp(name, "ppl_", 4) == 0 && name[4]) {
        int k = pb_cmp_ppl_index(c, name + 4);
        if (k < 0) {
            *too_many = 1;
            return NULL;
        }
        return &r->ppl[k];
    }
    return NULL;
}

/* The index stores headline accuracies as fractions (as the run files do); accept percent
 * too: an accuracy of at most 1% is not a result any of these tasks gives. */
static double to_pct(double v) {
    return isfinite(v) && v <= 1.0 ? 100.0 * v : v;
}

static int index_fail(pb_err *err, const char *path, const char *what) {
    return pb_err_set(err, "%s: %s", path, what);
}

static int read_index(pb_cmp *c, int di, const char *path, pb_err *err) {
    hid_t f = -1, d = -1, ft = -1, sp = -1;
    int rc = -1, first = c->n_rows;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return index_fail(err, path, "not an HDF5 file");
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return index_fail(err, path, "cannot open: damaged, or not an HDF5 file");
    if (H5Lexists(f, "summary", H5P_DEFAULT) <= 0) {
        index_fail(err, path, "no 'summary' dataset (not an experiment index)");
        goto done;
    }
    d = H5Dopen2(f, "summary", H5P_DEFAULT);
    ft = d >= 0 ? H5Dget_type(d) : -1;
    sp = d >= 0 ? H5Dget_space(d) : -1;
    if (d < 0 || ft < 0 || sp < 0) {
        index_fail(err, path, "cannot open dataset 'summary' (damaged file?)");
        goto done;
    }
    hsize_t n = 0;
    if (H5Tget_class(ft) != H5T_COMPOUND || H5Sget_simple_extent_ndims(sp) != 1 ||
        H5Sget_simple_extent_dims(sp, &n, NULL) != 1) {
        index_fail(err, path, "'summary' is not a one-dimensional compound table");
        goto done;
    }
    if (n > MAX_ROWS) {
        pb_err_set(err, "%s: 'summary' has %llu rows (more than %d)", path, (unsigned long long)n, MAX_ROWS);
        goto done;
    }
    if (pb_cmp_check_summary(path, f, d, ft, n, err) != 0) goto done;
    int nm = H5Tget_nmembers(ft);
    if (nm < 0) {
        index_fail(err, path, "cannot read the columns of 'summary'");
        goto done;
    }
    bool have_str[N_STR_COLS] = {0};
    for (hsize_t i = 0; i < n; i++)
        if (!pb_cmp_add_row(c, di)) {
            pb_err_set(err, "out of memory");
            goto done;
        }
    double *col = pb_calloc(n ? n : 1, sizeof *col);
    char **scol = pb_calloc(n ? n : 1, sizeof *scol);
    if (!col || !scol) {
        free(col), free(scol);
        pb_err_set(err, "out of memory");
        goto done;
    }
    for (int m = 0; m < nm; m++) {
        char *name = H5Tget_member_name(ft, (unsigned)m);
        hid_t mt = name ? H5Tget_member_type(ft, (unsigned)m) : -1;
        H5T_class_t cls = mt >= 0 ? H5Tget_class(mt) : H5T_NO_CLASS;
        int bad = 0, too_many = 0;
        if (!name || mt < 0) bad = 1;
        for (int k = 0; !bad && k < N_STR_COLS; k++) {
            if (strcmp(name, str_cols[k]) != 0) continue;
            if (cls != H5T_STRING || read_str_column(d, name, mt, n, scol) != 0) {
                bad = 1;
                break;
            }
            for (hsize_t i = 0; i < n; i++) {
                char **dst = str_field(&c->rows[first + (int)i], k);
                free(*dst);
                *dst = scol[i];
                scol[i] = NULL;
            }
            have_str[k] = true;
        }
        bool pct;
        pb_cmp_row probe;   /* where the column would go, asked before there is any row */
        if (!bad && (cls == H5T_INTEGER || cls == H5T_FLOAT) && num_field(c, &probe, name, &pct, &too_many)) {
            if (read_num_column(d, name, col) != 0) bad = 1;
            for (hsize_t i = 0; !bad && i < n; i++)
                *num_field(c, &c->rows[first + (int)i], name, &pct, &too_many) = pct ? to_pct(col[i]) : col[i];
        }
        if (bad || too_many)
            pb_err_set(err, "%s: 'summary' column '%s': %s", path, name ? name : "?",
                       too_many ? "too many perplexity columns" : "cannot be read (wrong type or damaged file)");
        for (hsize_t i = 0; i < n; i++) free(scol[i]), scol[i] = NULL;
        if (mt >= 0) H5Tclose(mt);
        if (name) H5free_memory(name);
        if (bad || too_many) {
            free(col), free(scol);
            goto done;
        }
    }
    free(col), free(scol);
    static const int required[] = {0, 2, 3, 6};   /* run_id, model, method, status */
    for (size_t k = 0; k < sizeof required / sizeof *required; k++)
        if (!have_str[required[k]]) {
            pb_err_set(err, "%s: 'summary' has no string column '%s'", path, str_cols[required[k]]);
            goto done;
        }
    for (int i = first; i < c->n_rows; i++) {
        pb_cmp_row *r = &c->rows[i];
        /* counts and block numbers use -1 for "not applicable" in integer columns */
        double *counts[] = {&r->params_before, &r->params_after, &r->params_after_ne, &r->num_blocks};
        for (size_t k = 0; k < sizeof counts / sizeof *counts; k++)
            if (*counts[k] < 0) *counts[k] = NAN;
        /* an index written before the mean existed, or without it: the mean of what was measured */
        if (!isfinite(r->mean)) {
            double s = 0;
            int k = 0;
            for (int t = 0; t < PB_CMP_TASKS; t++)
                if (isfinite(r->acc[t])) s += r->acc[t], k++;
            if (k) r->mean = s / k;
        }
    }
    pb_cmp_fill_from_runs(c, first, !have_str[1], !have_str[7]);
    rc = 0;
done:
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    return rc;
}

/* ---- folders ------------------------------------------------------------------------------ */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int pb_cmp_load(pb_cmp **out, const char *const *dirs, int n_dirs, pb_err *err) {
    *out = NULL;
    pb_cmp *c = calloc(1, sizeof *c);
    PB_CHECK_ALLOC(c, err);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* wikitext2 and ptb lead the perplexity columns, as in the papers */
    if (pb_cmp_ppl_index(c, "wikitext2") < 0 || pb_cmp_ppl_index(c, "ptb") < 0) goto oom;
    c->dirs = calloc((size_t)n_dirs + 1, sizeof *c->dirs);
    if (!c->dirs) goto oom;
    for (int i = 0; i < n_dirs; i++) {
        size_t len = strlen(dirs[i]);
        while (len > 1 && dirs[i][len - 1] == '/') len--;   /* "results/x/" names the same folder */
        c->dirs[i] = strndup(dirs[i], len);
        if (!c->dirs[i]) goto oom;
        c->n_dirs++;
    }
    for (int i = 0; i < n_dirs; i++) {
        struct stat st;
        const char *dir = c->dirs[i];
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            pb_err_set(err, "%s: no such experiment folder", dir);
            goto fail;
        }
        char *idx = join(dir, "index.h5"), *pub = join(dir, "published.yaml");
        if (!idx || !pub) {
            free(idx), free(pub);
            goto oom;
        }
        int rc = 0;
        if (stat(idx, &st) != 0)
            rc = pb_err_set(err, "%s: no such file (run `prunebench index %s` to build it)", idx, dir);
        else
            rc = read_index(c, i, idx, err);
        if (rc == 0 && stat(pub, &st) == 0) rc = pb_cmp_read_published(c, i, pub, err);
        free(idx), free(pub);
        if (rc != 0) goto fail;
    }
    *out = c;
    return 0;
oom:
    pb_err_set(err, "out of memory");
fail:
    pb_cmp_free(c);
    return -1;
}

/* results_h5.c — HDF5 helpers for the results files: scalar attributes written and read
 * back with type checks, open-or-create groups, whole datasets, and the error text taken
 * from HDF5's own stack (its automatic printing is switched off: one pb_err line instead). */
#include "results_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void pb_h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

hid_t pb_h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    int rc = H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ? -1 : 0;
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    /* shards of one experiment on a cluster file system without flock() support must still
     * work; every writer has its own temporary file, so the lock guards nothing we need */
    if (rc == 0 && H5Pset_file_locking(fapl, true, true) < 0) rc = -1;
#endif
    if (rc < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* The innermost entry is where HDF5 detected the problem; its text is the most specific
 * ("unable to open file: name = '...', errno = 2, error message = 'No such file ...'"). */
static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc && e->desc[0]) snprintf((char *)data, 512, "%s", e->desc);
    return 0;
}

int pb_h5_fail(pb_err *err, const char *path, const char *what, ...) {
    char reason[512] = "", msg[512];
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, reason);
    va_list ap;
    va_start(ap, what);
    vsnprintf(msg, sizeof msg, what, ap);
    va_end(ap);
    if (reason[0]) return pb_err_set(err, "%s: %s: %s", path, msg, reason);
    return pb_err_set(err, "%s: %s", path, msg);
}

/* ---- writing ------------------------------------------------------------------------------- */

static int attr_write(hid_t obj, const char *name, hid_t type, const void *value) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0 || (ex > 0 && H5Adelete(obj, name) < 0)) return -1;
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return -1;
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, value) >= 0) ? 0 : -1;
    hid_t kept = pb_h5_keep(rc);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    pb_h5_restore(kept);
    return rc;
}

static hid_t vlen_str_type(H5T_cset_t cset) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int pb_h5_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t t = vlen_str_type(H5T_CSET_UTF8);
    if (t < 0) return -1;
    const char *v = value ? value : "";
    int rc = attr_write(obj, name, t, &v);
    hid_t kept = pb_h5_keep(rc);
    H5Tclose(t);
    pb_h5_restore(kept);
    return rc;
}

int pb_h5_attr_f64(hid_t obj, const char *name, double v) {
    return attr_write(obj, name, H5T_NATIVE_DOUBLE, &v);
}

int pb_h5_attr_i64(hid_t obj, const char *name, int64_t v) {
    return attr_write(obj, name, H5T_NATIVE_INT64, &v);
}

hid_t pb_h5_group(hid_t loc, const char *name) {
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    if (ex < 0) return -1;
    if (ex > 0) return H5Gopen2(loc, name, H5P_DEFAULT);
    return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

int pb_h5_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    /* a rewrite replaces the dataset (its old space is not reclaimed, which is harmless
     * for the few small datasets a run file holds) */
    if (ex < 0 || (ex > 0 && H5Ldelete(loc, name, H5P_DEFAULT) < 0)) return -1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    if (space < 0) return -1;
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t npts = 1;
    for (int i = 0; i < rank; i++) npts *= dims[i];
    int rc = d >= 0 ? 0 : -1;
    /* an empty dataset has nothing to write (and data may be NULL) */
    if (rc == 0 && npts > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) rc = -1;
    hid_t kept = pb_h5_keep(rc);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    pb_h5_restore(kept);
    return rc;
}

bool pb_h5_name_ok(const char *s) {
    return s && s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Opens attribute name of obj when it is a scalar (or one-element) of class cls:
 * 1 absent, 0 opened (*a), -1 wrong (message in why). */
static int attr_open(hid_t obj, const char *name, H5T_class_t cls, hid_t *a, char *why, size_t cap) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) {
        snprintf(why, cap, "cannot look up attribute '%s'", name);
        return -1;
    }
    if (ex == 0) return 1;
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) {
        snprintf(why, cap, "cannot open attribute '%s'", name);
        return -1;
    }
    hid_t t = H5Aget_type(*a), s = H5Aget_space(*a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t npts = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    bool numeric = cls == H5T_FLOAT && (c == H5T_FLOAT || c == H5T_INTEGER);
    if ((c != cls && !numeric) || npts != 1) {
        snprintf(why, cap, "attribute '%s' is not a single %s", name, cls == H5T_STRING ? "string" : "number");
        H5Aclose(*a);
        return -1;
    }
    return 0;
}

int pb_h5_read_str(hid_t obj, const char *name, char **out, char *why, size_t cap) {
    hid_t a;
    int rc = attr_open(obj, name, H5T_STRING, &a, why, cap);
    if (rc != 0) return rc;
    rc = -1;
    *out = NULL;
    hid_t ft = H5Aget_type(a), mt = -1;
    htri_t var = ft >= 0 ? H5Tis_variable_str(ft) : -1;
    /* HDF5 does not convert between character sets: read in the file's own */
    H5T_cset_t cset = ft >= 0 ? H5Tget_cset(ft) : H5T_CSET_ERROR;
    if (cset == H5T_CSET_ERROR) var = -1;
    if (var > 0) {
        /* variable length: what this module writes */
        char *v = NULL;
        mt = vlen_str_type(cset);
        if (mt >= 0 && H5Aread(a, mt, &v) >= 0) {
            *out = strdup(v ? v : "");
            H5free_memory(v);
            rc = *out ? 0 : -1;
        }
    } else if (var == 0) {
        /* fixed length (a file written by other tools): read as NUL-terminated */
        size_t n = H5Tget_size(ft);
        char *v = n > 0 && n < ((size_t)1 << 30) ? calloc(n + 1, 1) : NULL;
        mt = H5Tcopy(H5T_C_S1);
        if (v && mt >= 0 && H5Tset_size(mt, n + 1) >= 0 && H5Tset_cset(mt, cset) >= 0 &&
            H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, v) >= 0) {
            *out = v;
            v = NULL;
            rc = 0;
        }
        free(v);
    }
    if (rc != 0) snprintf(why, cap, "cannot read attribute '%s'", name);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int pb_h5_read_f64(hid_t obj, const char *name, double *out, char *why, size_t cap) {
    hid_t a;
    int rc = attr_open(obj, name, H5T_FLOAT, &a, why, cap);
    if (rc != 0) return rc;
    rc = H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0 ? 0 : -1;
    if (rc != 0) snprintf(why, cap, "cannot read attribute '%s'", name);
    H5Aclose(a);
    return rc;
}

int pb_h5_read_i64(hid_t obj, const char *name, int64_t *out, char *why, size_t cap) {
    hid_t a;
    int rc = attr_open(obj, name, H5T_INTEGER, &a, why, cap);
    if (rc != 0) return rc;
    rc = H5Aread(a, H5T_NATIVE_INT64, out) >= 0 ? 0 : -1;
    if (rc != 0) snprintf(why, cap, "cannot read attribute '%s'", name);
    H5Aclose(a);
    return rc;
}

/* ---- run metadata --------------------------------------------------------------------------- */

void pb_h5_iso_now(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(out, 32, "unknown");
}

void pb_h5_hardware(char *out, size_t cap) {
    char model[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\r\n");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
        if (n > 0) snprintf(model, sizeof model, "%.*s", (int)n, v);
        break;
    }
    if (f) fclose(f);
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#else
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
    snprintf(out, cap, "%s; %d threads", model, threads);
}

/* results_internal.h — what the results_*.c files share: the open run file, and small HDF5
 * helpers (scalar attributes, groups, whole datasets, error text) that hide the id juggling
 * and turn HDF5's error stack into one pb_err line.
 *
 * Helpers return 0 / -1 (or an id < 0) and leave the reason on HDF5's error stack; the
 * caller then calls pb_h5_fail at once, before any other HDF5 call clears that stack. */
#ifndef PB_RESULTS_INTERNAL_H
#define PB_RESULTS_INTERNAL_H

#include "results.h"

#include <hdf5.h>

struct pb_result {
    hid_t file;
    char *tmp;     /* DIR/<run_id>.h5.pbtmp<pid>: where the file is written */
    char *final;   /* DIR/<run_id>.h5: where it lands when complete */
    double t0;     /* pb_time_now() at begin */
};

/* Silences HDF5's automatic stack printing (errors become pb_err lines instead). */
void pb_h5_quiet(void);
/* File access properties for every file here: a strong close (H5Fclose also closes what a
 * failed call left open, so the file is always released) and file locking that gives way
 * where the file system has none. */
hid_t pb_h5_fapl(void);
/* Fills err with "PATH: WHAT: <innermost HDF5 reason>" and returns -1. */
int  pb_h5_fail(pb_err *err, const char *path, const char *what, ...) __attribute__((format(printf, 3, 4)));

/* HDF5 clears its error stack at every API call, so cleanup after a failure (closing ids)
 * would erase the cause: keep it before cleaning up and put it back after. */
static inline hid_t pb_h5_keep(int rc) { return rc < 0 ? H5Eget_current_stack() : -1; }
static inline void pb_h5_restore(hid_t kept) { if (kept >= 0) H5Eset_current_stack(kept); }

/* Scalar attributes on a file, group or dataset, replacing one of the same name. Strings are
 * variable-length UTF-8 (h5py reads them as str); NULL is written as "". */
int  pb_h5_attr_str(hid_t obj, const char *name, const char *value);
int  pb_h5_attr_f64(hid_t obj, const char *name, double v);
int  pb_h5_attr_i64(hid_t obj, const char *name, int64_t v);

/* Reading attributes: 0 found, 1 absent, -1 error (wrong class or shape: message in why). */
int  pb_h5_read_str(hid_t obj, const char *name, char **out, char *why, size_t cap);  /* *out malloc'd */
int  pb_h5_read_f64(hid_t obj, const char *name, double *out, char *why, size_t cap);
int  pb_h5_read_i64(hid_t obj, const char *name, int64_t *out, char *why, size_t cap);

/* The child group `name` of loc, opened, or created when absent. */
hid_t pb_h5_group(hid_t loc, const char *name);
/* Writes a whole dataset (replacing one of that name) of native `type` with dims[0..rank). */
int  pb_h5_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data);

/* Whether s can name an HDF5 child object and a file: non-empty, no '/', not "." or "..". */
bool pb_h5_name_ok(const char *s);

/* Syncs tmp, renames it to final and syncs the folder; on failure removes tmp. */
int  pb_results_commit(const char *tmp, const char *final, pb_err *err);

/* "YYYY-MM-DDTHH:MM:SSZ" for now. */
void pb_h5_iso_now(char out[32]);
/* "CPU model; N threads" (OpenMP's max threads where built with OpenMP). */
void pb_h5_hardware(char *out, size_t cap);

#endif

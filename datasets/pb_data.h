/* pb_data.h — where evaluation and calibration data live, and how they are read.
 *
 * Files are never bundled: they are found in a data folder (--data-dir, else
 * $PRUNEBENCH_DATA, else ../shared/data or ./data relative to the working directory), under
 * the relative paths that datasets/registry.json gives, with their size and sha256. A
 * missing or corrupt file is an error that names the file, what was expected and where to
 * get it (the registry's source, or `datasets/fetch NAME`). */
#ifndef PB_DATA_H
#define PB_DATA_H

#include "pb_base.h"

typedef struct {
    const char *dataset;   /* "wikitext2" */
    const char *split;     /* "test" */
    const char *role;      /* "docs", "labels", or NULL for text sets */
    const char *path;      /* relative to the data folder: "wikitext2/wiki.test.raw" */
    const char *sha256;    /* 64 hex digits */
    int64_t bytes;
    const char *source;    /* "owner/repo@commit:path" */
    const char *url;       /* canonical download, or NULL */
} pb_data_file;

/* The data folder: opt if given, else $PRUNEBENCH_DATA, else the first of ../shared/data and
 * ./data that exists. *dir is malloc'd. The error lists what was tried and how to set it. */
int pb_data_dir(const char *opt, char **dir, pb_err *err);

/* Registry lookups. split NULL means the dataset's default split. The returned pointers live
 * as long as the program (the registry is compiled in). Unknown names list the known ones. */
int pb_data_files(const char *dataset, const char *split, const pb_data_file **files, int *n, pb_err *err);
const char *pb_data_default_split(const char *dataset); /* NULL if unknown */

/* Full path of one registered file after checking that it exists and has the registered
 * size (verify: also the sha256, cached per process). role selects among a split's files
 * ("docs" / "labels"; NULL when the split has one file). *path is malloc'd. */
int pb_data_path(const char *dir, const char *dataset, const char *split, const char *role, bool verify,
                 char **path, pb_err *err);

#endif

/* pb_test.h — minimal assertions for C tests (count failures, report file:line, exit 1) and
 * the helpers every test area shares: scratch files and folders, reference id lists, argmax,
 * relative error of a float array. Helpers that need a model are in pb_test_model.h. */
#ifndef PB_TEST_H
#define PB_TEST_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int pb_test_failures = 0;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); pb_test_failures++; } } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); pb_test_failures++; } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(fabs(_a - _b) <= (tol))) { \
    fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", __FILE__, __LINE__, #a, _a, #b, _b, \
            (double)(tol)); pb_test_failures++; } } while (0)
/* Fatal: a precondition for the rest of the test (e.g. a load succeeded). */
#define REQUIRE(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: REQUIRE failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

/* ../shared, or skip (exit 77) with a message saying why. */
static inline const char *pb_test_shared_or_skip(void) {
    const char *s = getenv("PB_SHARED");
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/DESIGN.md", s ? s : "../shared");
    FILE *f = fopen(probe, "r");
    if (!f) { fprintf(stderr, "SKIP: shared data folder not found (%s); set PB_SHARED\n", s ? s : "../shared"); exit(77); }
    fclose(f);
    return s ? s : "../shared";
}

static inline const char *pb_test_tmp(void) {
    const char *t = getenv("PB_TMP");
    return t ? t : "/tmp";
}

/* buf = a/b; the test stops when that does not fit. */
static inline void pb_test_join(char *buf, size_t cap, const char *a, const char *b) {
    int n = snprintf(buf, cap, "%s/%s", a, b);
    REQUIRE(n >= 0 && (size_t)n < cap, "path too long: %s/%s", a, b);
}

/* Removes a file, or a folder and everything below it. */
static inline void pb_test_rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { unlink(dir); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        pb_test_join(p, sizeof p, dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) pb_test_rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A fresh empty directory PB_TMP/name (path in buf). */
static inline const char *pb_test_fresh_dir(char *buf, size_t cap, const char *name) {
    pb_test_join(buf, cap, pb_test_tmp(), name);
    pb_test_rm_rf(buf);
    REQUIRE(mkdir(buf, 0777) == 0, "cannot create %s", buf);
    return buf;
}

/* Writes n bytes to path; the test stops when that fails. */
static inline void pb_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot create %s", path);
    REQUIRE(fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* Reads whitespace-separated token ids from a text file into ids[0..cap); returns how many
 * it read (cap one more than expected lets the caller notice extra ids). */
static inline int pb_test_read_ids(const char *path, int32_t *ids, int cap) {
    FILE *f = fopen(path, "r");
    REQUIRE(f, "cannot open %s", path);
    int n = 0, v;
    while (n < cap && fscanf(f, "%d", &v) == 1) ids[n++] = v;
    fclose(f);
    return n;
}

/* Index of the largest of x[0..n) (the first one on ties). */
static inline int pb_test_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* max|x - ref| / max|ref| over n values (max|x - ref| when ref is all zero): an error
 * measure on the scale of the largest value, which near-zero entries cannot inflate.
 * A NaN or Inf anywhere is an infinite error (a max over NaN would silently skip it). */
static inline double pb_test_rel_err(const float *x, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - ref[i]), r = fabs((double)ref[i]);
        if (!isfinite(e)) return INFINITY;
        num = e > num ? e : num;
        den = r > den ? r : den;
    }
    return den > 0 ? num / den : num;
}

static inline int pb_test_done(const char *name) {
    if (pb_test_failures) { fprintf(stderr, "%s: %d check(s) failed\n", name, pb_test_failures); return 1; }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

#endif

/* pb_test.h — minimal assertions for C tests: count failures, report file:line, exit 1. */
#ifndef PB_TEST_H
#define PB_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static inline int pb_test_done(const char *name) {
    if (pb_test_failures) { fprintf(stderr, "%s: %d check(s) failed\n", name, pb_test_failures); return 1; }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

#endif

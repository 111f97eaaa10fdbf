/* err.c — one-line error messages with context, and the panic for broken invariants. */
#include "pb_base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pb_err_setf(pb_err *e, const char *src_file, int src_line, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* Messages must stay on one line: a newline from a file name or a library message
     * would break "prunebench: error: ..." parsing by scripts. */
    for (char *p = e->msg; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    e->src_file = src_file;
    e->src_line = src_line;
    return -1;
}

int pb_err_prefix(pb_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char pre[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    /* shift the old message right; if both do not fit, the old message's tail is cut */
    size_t cap = sizeof e->msg - 1, pl = strlen(pre), ol = strnlen(e->msg, cap);
    if (pl > cap) pl = cap;
    if (pl + ol > cap) ol = cap - pl;
    memmove(e->msg + pl, e->msg, ol);
    memcpy(e->msg, pre, pl);
    e->msg[pl + ol] = 0;
    return -1;
}

void pb_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "prunebench: internal error at %s:%d: assertion failed: %s\n", file, line, what);
    abort();
}

int pb_log_verbosity = PB_LOG_INFO;

void pb_log(pb_log_level lvl, const char *fmt, ...) {
    if ((int)lvl > pb_log_verbosity) return;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "prunebench: %s: ", names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

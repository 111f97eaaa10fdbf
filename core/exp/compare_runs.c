/* compare_runs.c — the label and error of runs, read from their run files when the index
 * does not carry them.
 *
 * They are read in a child process: HDF5 1.10 trusts object headers and global heaps, and a
 * damaged run file made it crash or loop forever (found by flipping bytes of run files under
 * ASan). These strings are a nicety of the table, not worth the comparison: a run file that
 * kills or stalls the child (alarm) just leaves its run without them, and a new child goes
 * on with the next run. The child writes records on a pipe: u32 row, then label and error
 * as u32 length + bytes; row UINT32_MAX ends the stream. */
#include "compare.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PER_FILE_SECONDS 5
#define MAX_TEXT 4096

/* A string attribute of the file's root ("" when absent or unreadable); malloc'd or NULL. */
static char *attr_str(hid_t f, const char *name) {
    char *out = NULL;
    if (H5Aexists(f, name) <= 0) return strdup("");
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    if (t >= 0 && s >= 0 && H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(s) == 1) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(t)) >= 0 &&
                H5Aread(a, mt, &v) >= 0 && v) {
                out = strndup(v, MAX_TEXT);
                H5free_memory(v);
            }
        } else {
            size_t n = H5Tget_size(t);
            char *v = n > 0 && n <= MAX_TEXT ? calloc(n + 1, 1) : NULL;
            if (v && mt >= 0 && H5Tset_size(mt, n + 1) >= 0 && H5Tset_cset(mt, H5Tget_cset(t)) >= 0 &&
                H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 && H5Aread(a, mt, v) >= 0)
                out = v, v = NULL;
            free(v);
        }
        if (mt >= 0) H5Tclose(mt);
    }
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return out ? out : strdup("");
}

static bool put(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) return false;
        c += w, n -= (size_t)w;
    }
    return true;
}

static bool get(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r <= 0) return false;
        c += r, n -= (size_t)r;
    }
    return true;
}

static bool run_path(const pb_cmp *c, const pb_cmp_row *r, char *out, size_t cap) {
    if (!r->run_id[0] || strchr(r->run_id, '/') || strcmp(r->run_id, "..") == 0) return false;
    return (size_t)snprintf(out, cap, "%s/%s.h5", c->dirs[r->dir], r->run_id) < cap;
}

static void child(const pb_cmp *c, const int *todo, int n, int fd) {
    int dn = open("/dev/null", O_WRONLY);   /* a crash report here is not the user's concern */
    if (dn >= 0) dup2(dn, STDERR_FILENO);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int k = 0; k < n; k++) {
        const pb_cmp_row *r = &c->rows[todo[k]];
        char path[4096];
        alarm(PER_FILE_SECONDS);
        hid_t f = run_path(c, r, path, sizeof path) ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
        char *label = f >= 0 ? attr_str(f, "label") : strdup("");
        char *error = f >= 0 ? attr_str(f, "error") : strdup("");
        if (f >= 0) H5Fclose(f);
        uint32_t row = (uint32_t)k, nl = label ? (uint32_t)strlen(label) : 0, ne = error ? (uint32_t)strlen(error) : 0;
        if (!put(fd, &row, 4) || !put(fd, &nl, 4) || !put(fd, label, nl) || !put(fd, &ne, 4) || !put(fd, error, ne))
            _exit(1);
        free(label), free(error);
    }
    uint32_t end = UINT32_MAX;
    put(fd, &end, 4);
    _exit(0);
}

/* Reads records from one child; returns how many of todo[] it finished (the next one, if any,
 * is the one it died on). */
static int harvest(pb_cmp *c, const int *todo, int n, int fd) {
    int done = 0;
    for (;;) {
        uint32_t row, len;
        if (!get(fd, &row, 4)) return done;
        if (row == UINT32_MAX) return n;
        if (row >= (uint32_t)n) return done;
        pb_cmp_row *r = &c->rows[todo[row]];
        for (int s = 0; s < 2; s++) {
            if (!get(fd, &len, 4) || len > MAX_TEXT) return done;
            char *v = malloc((size_t)len + 1);
            if (!v || !get(fd, v, len)) {
                free(v);
                return done;
            }
            v[len] = 0;
            char **dst = s == 0 ? &r->label : &r->error;
            if (v[0] && !(*dst)[0]) free(*dst), *dst = v;
            else free(v);
        }
        done = (int)row + 1;
    }
}

void pb_cmp_fill_from_runs(pb_cmp *c, int first, bool need_label, bool need_error) {
    int *todo = pb_calloc((size_t)(c->n_rows - first) + 1, sizeof *todo), n = 0;
    if (!todo) return;
    for (int i = first; i < c->n_rows; i++) {
        const pb_cmp_row *r = &c->rows[i];
        if (!r->paper && ((need_label && !r->label[0]) || (need_error && strcmp(r->status, "done") != 0 && !r->error[0])))
            todo[n++] = i;
    }
    fflush(stdout);
    fflush(stderr);
    for (int start = 0; start < n;) {
        int fds[2];
        if (pipe(fds) != 0) break;
        pid_t pid = fork();
        if (pid < 0) {
            close(fds[0]), close(fds[1]);
            break;
        }
        if (pid == 0) {
            close(fds[0]);
            child(c, todo + start, n - start, fds[1]);
        }
        close(fds[1]);
        int got = harvest(c, todo + start, n - start, fds[0]);
        close(fds[0]);
        if (got < n - start) kill(pid, SIGKILL);   /* it died, stalls, or wrote nonsense */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        start += got < n - start ? got + 1 : got;   /* skip the file the child died on */
    }
    free(todo);
}

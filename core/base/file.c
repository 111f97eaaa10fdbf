/* file.c — memory maps, whole-file reads and path helpers, each failure naming the file. */
#include "pb_base.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pb_mmap_open(pb_mmap *m, const char *path, bool copy_on_write, pb_err *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pb_err_set(err, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        int prot = PROT_READ | (copy_on_write ? PROT_WRITE : 0);
        void *p = mmap(NULL, m->size, prot, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return pb_err_set(err, "%s: cannot map: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    m->path = strdup(path);
    m->writable = copy_on_write;
    if (!m->path) { pb_mmap_close(m); return pb_err_set(err, "out of memory"); }
    return 0;
}

void pb_mmap_close(pb_mmap *m) {
    if (m->data) munmap(m->data, m->size);
    free((void *)m->path);
    memset(m, 0, sizeof *m);
}

int pb_file_read_all(const char *path, char **out, size_t *size, pb_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return pb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); return pb_err_set(err, "out of memory reading %s", path); }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); return pb_err_set(err, "out of memory reading %s", path); }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return pb_err_set(err, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (size) *size = n;
    return 0;
}

bool pb_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool pb_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *pb_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int pb_mkdir_p(const char *dir, bool *created, pb_err *err) {
    *created = false;
    if (pb_is_dir(dir)) return 0;
    char *p = strdup(dir);
    PB_CHECK_ALLOC(p, err);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (!pb_is_dir(p) && mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return pb_err_set(err, "%s: cannot create directory: %s", dir, strerror(e));
        }
        *q = '/';
    }
    free(p);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return pb_err_set(err, "%s: cannot create directory: %s", dir, strerror(errno));
    *created = true;
    return 0;
}

int pb_file_write_atomic(const char *path, const void *data, size_t n, pb_err *err) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    PB_CHECK_ALLOC(tmp, err);
    snprintf(tmp, len, "%s.pbtmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        pb_err_set(err, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    /* flushed and synced before the rename, so that a crash leaves the old file or the new
     * one, never a short one */
    bool ok = fwrite(data, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        free(tmp);
        return pb_err_set(err, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

void pb_remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *x;
    while ((x = readdir(d))) {
        const char *t = strstr(x->d_name, ".pbtmp");
        if (!t) continue;
        long pid = strtol(t + 6, NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;   /* alive, or not ours to judge */
        char *p = pb_path_join(dir, x->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
}

double pb_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* test_results.c — the run-file life cycle and the index, through the library: finished runs
 * (done and failed, some groups missing) are seen by pb_result_exists and indexed; an abort
 * leaves nothing; a process killed mid-write leaves only a .pbtmp file that nobody reads; a
 * damaged final-named file is "not finished" for exists() and an error naming it for the
 * index; bad arguments give one-line errors and HDF5 prints nothing of its own. Field-by-field
 * values through h5py are in test_results_h5py.py. */
#include "pb_test.h"
#include "results.h"

#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>

static pb_result_id make_id(const char *run_id, const char *method) {
    pb_result_id id = {.run_id = run_id, .experiment = "unit", .label = run_id, .config_yaml = "model: tiny\n",
                       .model = "tiny", .method = method, .criterion = "taylor", .granularity = "block",
                       .ratio = 0.2, .native = NAN, .num_blocks = -1, .seed = 0};
    return id;
}

/* How many entries of dir start with prefix (and, with contains, contain it). */
static int count_entries(const char *dir, const char *prefix, const char *contains) {
    DIR *d = opendir(dir);
    REQUIRE(d, "cannot list %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && (!contains || strstr(e->d_name, contains))) n++;
    closedir(d);
    return n;
}

static bool file_there(const char *dir, const char *name) {
    char p[4096];
    pb_test_join(p, sizeof p, dir, name);
    return access(p, F_OK) == 0;
}

/* stderr of the calls between capture_start and capture_end, into buf. */
static int saved_fd = -1;
static char cap_path[4096];
static void capture_start(void) {
    pb_test_join(cap_path, sizeof cap_path, pb_test_tmp(), "exp_results_stderr.txt");
    fflush(stderr);
    saved_fd = dup(2);
    int fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(saved_fd >= 0 && fd >= 0 && dup2(fd, 2) == 2, "cannot redirect stderr");
    close(fd);
}
static void capture_end(char *buf, size_t cap) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    FILE *f = fopen(cap_path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* A complete run with every group. */
static void write_full(const char *dir, const char *run_id, pb_err *err) {
    pb_result *r;
    pb_result_id id = make_id(run_id, "depth");
    REQUIRE(pb_result_begin(&r, dir, &id, err) == 0, "begin: %s", err->msg);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.h5.pbtmp%ld", run_id, (long)getpid());
    CHECK(file_there(dir, tmp));
    CHECK(!pb_result_exists(dir, run_id));   /* only the temporary file exists while writing */
    int32_t nh[3] = {8, 8, 4}, nkv[3] = {4, 4, 2}, ffn[3] = {172, 172, 100};
    /* blocks 1 and 3 of 5 went, then two heads and a channel: kept layers 0, 2, 4 */
    int32_t removed[5 * 3] = {1, 0, 0, 3, 0, 0, 4, 3, 1, 4, 3, 2, 2, 4, 17};
    double scores[5] = {1, 0.5, 2, 0.25, 3};
    int64_t step[3] = {1, 2, 3};
    double loss[3] = {3, 2.5, 2}, val[3] = {NAN, NAN, 2.25};
    CHECK(pb_result_params(r, 1000, 800, 900, 700, err) == 0);
    CHECK(pb_result_structure(r, nh, nkv, ffn, 3, removed, 5, err) == 0);
    CHECK(pb_result_ppl(r, "wikitext2", 20.5, log(20.5), 0.01, 4096, 32, 128, err) == 0);
    CHECK(pb_result_ppl(r, "ptb", 30.5, log(30.5), 0.02, 4096, 32, 128, err) == 0);
    CHECK(pb_result_zeroshot(r, "boolq", 0.6, 0.01, NAN, NAN, 0.6, 100, err) == 0);
    CHECK(pb_result_zeroshot(r, "piqa", 0.7, 0.01, 0.72, 0.01, 0.72, 100, err) == 0);
    CHECK(pb_result_zeroshot_mean(r, 66.0, err) == 0);
    CHECK(pb_result_latency(r, 1, 5.0, 1.5, 666.0, 1 << 20, err) == 0);
    CHECK(pb_result_latency(r, 4, 9.0, 2.0, 2000.0, 1 << 21, err) == 0);
    CHECK(pb_result_importance(r, NULL, "block", scores, 5, 1, err) == 0);
    CHECK(pb_result_training(r, step, loss, NULL, NULL, val, 3, err) == 0);
    /* a second write of a group replaces it */
    CHECK(pb_result_ppl(r, "wikitext2", 21.5, log(21.5), 0.01, 4096, 32, 128, err) == 0);
    CHECK(pb_result_end(r, NULL, err) == 0);
    CHECK(!file_there(dir, tmp));
    CHECK(pb_result_exists(dir, run_id));
}

/* A child process that starts run_id, writes part of it and dies without ending it. */
static void killed_run(const char *dir, const char *run_id, bool sigkill) {
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork failed");
    if (pid == 0) {
        pb_err err;
        pb_result *r;
        pb_result_id id = make_id(run_id, "flap");
        if (pb_result_begin(&r, dir, &id, &err) != 0) _exit(3);
        if (pb_result_params(r, 10, 9, 8, 7, &err) != 0) _exit(4);
        if (pb_result_ppl(r, "wikitext2", 1, 0, 0, 1, 1, 1, &err) != 0) _exit(5);
        if (sigkill) raise(SIGKILL);
        _exit(9);
    }
    int st;
    REQUIRE(waitpid(pid, &st, 0) == pid, "waitpid");
    if (sigkill) CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
    else CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 9, "child status %d", st);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.h5.pbtmp%ld", run_id, (long)pid);
    CHECK_MSG(file_there(dir, tmp), "no %s", tmp);
    CHECK(count_entries(dir, run_id, NULL) == 1);   /* the temporary file only */
    CHECK(!pb_result_exists(dir, run_id));
}

/* The run_id column of dir/index.h5 (n rows at most) and the column names. */
static int read_index(const char *dir, char ids[][16], int cap, char names[][32], int *n_names) {
    char p[4096];
    pb_test_join(p, sizeof p, dir, "index.h5");
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot open %s", p);
    hid_t d = H5Dopen2(f, "summary", H5P_DEFAULT), t = H5Dget_type(d), s = H5Dget_space(d);
    int n = (int)H5Sget_simple_extent_npoints(s);
    *n_names = H5Tget_nmembers(t);
    for (int i = 0; i < *n_names && i < 40; i++) {
        char *m = H5Tget_member_name(t, (unsigned)i);
        snprintf(names[i], 32, "%s", m);
        H5free_memory(m);
    }
    hid_t mt = H5Tcreate(H5T_COMPOUND, 16), st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 16);
    H5Tset_cset(st, H5T_CSET_UTF8);   /* HDF5 converts no character sets */
    H5Tinsert(mt, "run_id", 0, st);
    REQUIRE(n <= cap, "%d rows", n);
    if (n > 0) REQUIRE(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0, "read run_id");
    H5Tclose(st);
    H5Tclose(mt);
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    return n;
}

static void check_index_rows(const char *dir, int expect, const char *const *ids_sorted) {
    char ids[16][16], names[40][32];
    int n_names;
    int n = read_index(dir, ids, 16, names, &n_names);
    CHECK_MSG(n == expect, "%d rows", n);
    for (int i = 0; i < n && i < expect; i++)
        CHECK_MSG(!strncmp(ids[i], ids_sorted[i], 16), "row %d: %.16s", i, ids[i]);
    static const char *const cols[] = {"run_id", "model", "method", "criterion", "granularity", "ratio", "native",
        "num_blocks", "seed", "status", "params_before", "params_after", "params_after_no_embed", "ppl_wikitext2",
        "ppl_ptb", "ppl_c4", "ppl_tinystories", "acc_boolq", "acc_piqa", "acc_hellaswag", "acc_winogrande",
        "acc_arc_easy", "acc_arc_challenge", "acc_openbookqa", "acc_mean", "latency_ms", "throughput"};
    CHECK(n_names == (int)(sizeof cols / sizeof *cols));
    for (int i = 0; i < n_names && i < (int)(sizeof cols / sizeof *cols); i++)
        CHECK_MSG(!strcmp(names[i], cols[i]), "column %d: %s", i, names[i]);
}

/* kept_layers of a run file, through the C API (the original-numbering bookkeeping). */
static void check_kept(const char *dir, const char *run_id) {
    char p[4096], name[64];
    snprintf(name, sizeof name, "%s.h5", run_id);
    pb_test_join(p, sizeof p, dir, name);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot open %s", p);
    hid_t d = H5Dopen2(f, "/structure/kept_layers", H5P_DEFAULT);
    int32_t kept[8] = {0};
    hid_t s = H5Dget_space(d);
    CHECK(H5Sget_simple_extent_npoints(s) == 3);
    CHECK(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, kept) >= 0);
    CHECK(kept[0] == 0 && kept[1] == 2 && kept[2] == 4);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
}

int main(void) {
    pb_err err = {0};
    char base[4096], dir[4096], name[128];
    pb_test_fresh_dir(base, sizeof base, "exp_results_c");
    pb_test_join(dir, sizeof dir, base, "exp/nested");   /* begin creates the folders */

    /* done, with every group */
    write_full(dir, "bbbb", &err);
    check_kept(dir, "bbbb");

    /* failed, with only its params */
    pb_result *r;
    pb_result_id id = make_id("aaaa", "llm-pruner");
    REQUIRE(pb_result_begin(&r, dir, &id, &err) == 0, "begin: %s", err.msg);
    CHECK(pb_result_params(r, 1000, 1000, 900, 900, &err) == 0);
    CHECK(pb_result_end(r, "calibration: out of memory", &err) == 0);
    CHECK(pb_result_exists(dir, "aaaa"));

    /* done, nothing but the identity (the dense run of a model with no evaluation) */
    id = make_id("cccc", "dense");
    id.criterion = NULL;                 /* NULL strings are written as "" */
    REQUIRE(pb_result_begin(&r, dir, &id, &err) == 0, "begin: %s", err.msg);
    CHECK(pb_result_end(r, NULL, &err) == 0);
    CHECK(pb_result_exists(dir, "cccc"));

    /* aborted: nothing left */
    id = make_id("dddd", "flap");
    REQUIRE(pb_result_begin(&r, dir, &id, &err) == 0, "begin: %s", err.msg);
    CHECK(pb_result_ppl(r, "ptb", 1, 0, 0, 1, 1, 1, &err) == 0);
    pb_result_abort(r);
    CHECK(count_entries(dir, "dddd", NULL) == 0);
    CHECK(!pb_result_exists(dir, "dddd"));

    /* killed mid-write, by _exit and by SIGKILL: a temporary file only */
    killed_run(dir, "eeee", false);
    killed_run(dir, "ffff", true);
    CHECK(!pb_result_exists(dir, "zzzz"));       /* never written */

    int n = -1;
    CHECK_MSG(pb_results_index(dir, &n, &err) == 0, "index: %s", err.msg);
    CHECK(n == 3);
    static const char *const sorted[] = {"aaaa", "bbbb", "cccc"};
    check_index_rows(dir, 3, sorted);
    CHECK(count_entries(dir, "index.h5", NULL) == 1);   /* and no index.h5.pbtmp left */
    /* the index is not a run: rebuilding it gives the same rows */
    CHECK(pb_results_index(dir, &n, &err) == 0 && n == 3);
    check_index_rows(dir, 3, sorted);
    CHECK(count_entries(dir, "", ".pbtmp") == 2);       /* the killed runs' files, untouched */

    /* a damaged final-named file: not finished for exists(), an error naming it for the index,
     * and HDF5's own error stack never reaches stderr */
    pb_test_join(name, sizeof name, dir, "gggg.h5");
    pb_test_write_file(name, "not an HDF5 file at all", 23);
    char out[8192];
    capture_start();
    bool ex = pb_result_exists(dir, "gggg");
    int rc = pb_results_index(dir, &n, &err);
    capture_end(out, sizeof out);
    CHECK(!ex);
    CHECK(rc == -1 && strstr(err.msg, "gggg.h5") && !strchr(err.msg, '\n'));
    CHECK_MSG(out[0] == 0, "stderr: %s", out);
    fprintf(stderr, "expected error: %s\n", err.msg);
    unlink(name);

    /* an HDF5 file that is not a run file; a run file under another run's name */
    hid_t f = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot create %s", name);
    H5Fclose(f);
    CHECK(!pb_result_exists(dir, "gggg"));
    CHECK(pb_results_index(dir, &n, &err) == -1 && strstr(err.msg, "gggg.h5") && strstr(err.msg, "run_id"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    char src[4096];
    pb_test_join(src, sizeof src, dir, "aaaa.h5");
    REQUIRE(rename(src, name) == 0, "rename");
    CHECK(pb_results_index(dir, &n, &err) == -1 && strstr(err.msg, "gggg.h5") && strstr(err.msg, "'aaaa'"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    REQUIRE(rename(name, src) == 0, "rename back");
    /* the previous index is still whole after the failed rebuilds */
    check_index_rows(dir, 3, sorted);

    /* bad arguments: one line, naming the file or folder */
    id = make_id("a/b", "depth");
    CHECK(pb_result_begin(&r, dir, &id, &err) == -1 && strstr(err.msg, "run id"));
    id.run_id = "index";
    CHECK(pb_result_begin(&r, dir, &id, &err) == -1);
    id.run_id = "hhhh";
    pb_test_join(name, sizeof name, dir, "aaaa.h5/sub");   /* a folder under a file */
    CHECK(pb_result_begin(&r, name, &id, &err) == -1 && strstr(err.msg, "aaaa.h5"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    REQUIRE(pb_result_begin(&r, dir, &id, &err) == 0, "begin: %s", err.msg);
    int32_t one[1] = {1}, bad[3] = {7, 0, 0};   /* block 7 of a 2-layer model */
    double scores_ok[1] = {1.0};
    CHECK(pb_result_structure(r, one, one, one, 1, bad, 1, &err) == -1 && strstr(err.msg, "hhhh.h5.pbtmp"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    bad[1] = 9;
    CHECK(pb_result_structure(r, one, one, one, 1, bad, 1, &err) == -1);
    CHECK(pb_result_ppl(r, ".", 1, 0, 0, 1, 1, 1, &err) == -1);
    CHECK(pb_result_zeroshot(r, "", 1, 0, 0, 0, 1, 1, &err) == -1);
    CHECK(pb_result_latency(r, 0, 1, 1, 1, 1, &err) == -1);
    CHECK(pb_result_importance(r, NULL, NULL, NULL, 3, 1, &err) == -1);
    CHECK(pb_result_importance(r, "a/b", NULL, scores_ok, 1, 1, &err) == -1 && strstr(err.msg, "a/b"));
    CHECK(pb_result_training(r, NULL, NULL, NULL, NULL, NULL, 2, &err) == -1);
    /* empty arrays are fine: a model with no layers left, no training points */
    CHECK(pb_result_structure(r, NULL, NULL, NULL, 0, NULL, 0, &err) == 0);
    CHECK(pb_result_training(r, NULL, NULL, NULL, NULL, NULL, 0, &err) == 0);
    CHECK(pb_result_importance(r, "channels", "channel", NULL, 0, 4, &err) == 0);
    CHECK(pb_result_end(r, NULL, &err) == 0);   /* the file survives the refused calls */
    CHECK(pb_results_index(dir, &n, &err) == 0 && n == 4);
    CHECK(pb_results_index("/nonexistent/pb/results", &n, &err) == -1 && strstr(err.msg, "/nonexistent/pb/results"));

    /* the rename into place fails (a folder holds the final name): an error naming it, no
     * temporary file left behind, and the folder is neither a finished run nor an index row */
    pb_test_join(name, sizeof name, dir, "iiii.h5");
    REQUIRE(mkdir(name, 0777) == 0, "mkdir %s", name);
    pb_test_join(src, sizeof src, name, "keep");
    pb_test_write_file(src, "x", 1);               /* a non-empty folder cannot be replaced */
    id.run_id = "iiii";
    REQUIRE(pb_result_begin(&r, dir, &id, &err) == 0, "begin: %s", err.msg);
    CHECK(pb_result_end(r, NULL, &err) == -1 && strstr(err.msg, "iiii.h5"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    CHECK(count_entries(dir, "iiii", NULL) == 1);
    CHECK(!pb_result_exists(dir, "iiii"));
    CHECK(pb_results_index(dir, &n, &err) == 0 && n == 4);

    /* an empty folder gives an empty index */
    pb_test_join(dir, sizeof dir, base, "empty");
    REQUIRE(mkdir(dir, 0777) == 0, "mkdir");
    CHECK(pb_results_index(dir, &n, &err) == 0 && n == 0);
    check_index_rows(dir, 0, sorted);
    /* the index cannot be moved into place: an error naming it, no temporary file left */
    pb_test_join(name, sizeof name, dir, "index.h5");
    unlink(name);
    REQUIRE(mkdir(name, 0777) == 0, "mkdir %s", name);
    pb_test_join(src, sizeof src, name, "keep");
    pb_test_write_file(src, "x", 1);
    CHECK(pb_results_index(dir, &n, &err) == -1 && strstr(err.msg, "index.h5"));
    fprintf(stderr, "expected error: %s\n", err.msg);
    CHECK(count_entries(dir, "", ".pbtmp") == 0);
    return pb_test_done("exp_results");
}

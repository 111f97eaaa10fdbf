/* test_data_registry.c — the dataset registry and the data-file checks.
 *
 * - every registered file present in ../shared/data passes the size and sha256 checks;
 * - WikiText-2 rows (wikitext format) reproduce the HF dataset_infos.json num_bytes exactly
 *   (Arrow stores the row bytes plus 4-byte offsets, n + 1 of them), and the row counts of
 *   eval-protocol.md section 4 (WikiText-2 and PTB);
 * - a missing file, a file of the wrong size and a same-size file with the wrong sha256 each
 *   give their one-line error naming the file, the expected size / sha256 / source and the
 *   fix; C4 (not bundled, hash not recorded) gives the "missing, how to obtain" error;
 * - unknown datasets and splits list the known ones; split synonyms; data-folder choice. */
#include "pb_data.h"
#include "pb_test.h"

#include <stdlib.h>
#include <string.h>

static char g_data[4096];

/* Splits "a, b, c" in place. */
static int split_list(char *s, char **out, int cap) {
    int n = 0;
    for (char *t = strtok(s, ", "); t && n < cap; t = strtok(NULL, ", ")) out[n++] = t;
    return n;
}

static void test_shared_files_verify(void) {
    char names[1024], *ds[64];
    pb_data_names(NULL, names, sizeof names);
    int nd = split_list(names, ds, 64), verified = 0, absent = 0;
    CHECK(nd >= 12); /* 3 text sets + c4 + 7 task sets + the tokenizer */
    for (int i = 0; i < nd; i++) {
        const pb_data_info *in;
        pb_err err = {0};
        REQUIRE(pb_data_info_get(ds[i], &in, &err) == 0, "%s", err.msg);
        for (int s = 0; s < in->n_splits; s++) {
            const pb_data_file *fs;
            int n;
            REQUIRE(pb_data_files(ds[i], in->splits[s], &fs, &n, &err) == 0, "%s", err.msg);
            for (int k = 0; k < n; k++) {
                char full[4096];
                pb_test_join(full, sizeof full, g_data, fs[k].path);
                if (!pb_file_exists(full)) { absent++; continue; }
                char *path = NULL;
                int rc = pb_data_path(g_data, ds[i], in->splits[s], fs[k].role, true, &path, &err);
                CHECK_MSG(rc == 0, "%s %s %s: %s", ds[i], in->splits[s], fs[k].path, err.msg);
                CHECK_MSG(fs[k].sha256 != NULL, "%s: shared file without a recorded sha256", fs[k].path);
                if (rc == 0) { CHECK(strcmp(path, full) == 0); verified++; }
                free(path);
            }
        }
    }
    /* MANIFEST.tsv lists 17 files; only C4 is registered but not bundled */
    fprintf(stderr, "verified %d registered files, %d absent\n", verified, absent);
    CHECK(verified == 17);
    CHECK(absent == 1);
}

/* HF wikitext-2-raw-v1 dataset_infos.json num_bytes = row bytes + 4 * (rows + 1). */
static void test_wikitext_num_bytes(void) {
    struct { const char *split; size_t rows; long long num_bytes; } want[] = {{"test", 4358, 1305092},
                                                                              {"valid", 3760, 1159292}};
    for (int i = 0; i < 2; i++) {
        pb_err err = {0};
        char *path = NULL;
        REQUIRE(pb_data_path(g_data, "wikitext2", want[i].split, NULL, false, &path, &err) == 0, "%s", err.msg);
        pb_rows r;
        REQUIRE(pb_rows_read(path, PB_TEXT_WIKITEXT, NULL, 0, &r, &err) == 0, "%s", err.msg);
        CHECK_MSG(r.n == want[i].rows, "%s: %zu rows", want[i].split, r.n);
        long long nb = (long long)r.off[r.n] + 4LL * (long long)(r.n + 1);
        CHECK_MSG(nb == want[i].num_bytes, "%s: num_bytes %lld, HF says %lld", want[i].split, nb, want[i].num_bytes);
        pb_rows_free(&r);
        free(path);
    }
    struct { const char *split; size_t rows; } ptb[] = {{"train", 42068}, {"valid", 3370}, {"test", 3761}};
    for (int i = 0; i < 3; i++) {
        pb_err err = {0};
        char *path = NULL;
        REQUIRE(pb_data_path(g_data, "ptb", ptb[i].split, NULL, false, &path, &err) == 0, "%s", err.msg);
        pb_rows r;
        REQUIRE(pb_rows_read(path, PB_TEXT_LINES, NULL, 0, &r, &err) == 0, "%s", err.msg);
        CHECK_MSG(r.n == ptb[i].rows, "ptb %s: %zu rows", ptb[i].split, r.n);
        pb_rows_free(&r);
        free(path);
    }
}

static bool one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

static void check_has(const char *msg, const char *part) {
    CHECK_MSG(strstr(msg, part) != NULL, "'%s' not in: %s", part, msg);
}

static void test_bad_files(void) {
    char dir[4096], sub[4096], file[4096];
    pb_test_fresh_dir(dir, sizeof dir, "data_registry_bad");
    pb_test_join(sub, sizeof sub, dir, "wikitext2");
    REQUIRE(mkdir(sub, 0777) == 0, "mkdir %s", sub);
    pb_test_join(file, sizeof file, sub, "wiki.test.raw");
    pb_err err = {0};
    char *path = NULL;

    /* missing: the exact documented message */
    CHECK(pb_data_path(dir, "wikitext2", "test", NULL, true, &path, &err) == -1 && path == NULL);
    char want[8192];
    snprintf(want, sizeof want,
             "%s: missing; expected 1290590 bytes (sha256 173c87a5...) from DRAGNLabs/LLMHumanModeling@67cb89e:"
             "data/wiki.test.raw — run datasets/fetch wikitext2 or set --data-dir", file);
    CHECK_MSG(strcmp(err.msg, want) == 0, "got: %s", err.msg);

    /* wrong size */
    pb_test_write_file(file, "short\n", 6);
    CHECK(pb_data_path(dir, "wikitext2", "test", NULL, true, &path, &err) == -1);
    CHECK(one_line(err.msg));
    check_has(err.msg, file);
    check_has(err.msg, ": 6 bytes, but the registry expected 1290590 bytes (sha256 173c87a5...)");
    check_has(err.msg, "datasets/fetch wikitext2");

    /* right size, wrong content */
    char *zeros = calloc(1290590, 1);
    REQUIRE(zeros, "oom");
    pb_test_write_file(file, zeros, 1290590);
    free(zeros);
    CHECK(pb_data_path(dir, "wikitext2", "test", NULL, false, &path, &err) == 0); /* size only: accepted */
    free(path);
    path = NULL;
    CHECK(pb_data_path(dir, "wikitext2", "test", NULL, true, &path, &err) == -1 && path == NULL);
    CHECK(one_line(err.msg));
    check_has(err.msg, file);
    check_has(err.msg, "sha256 ");
    check_has(err.msg, "differs from the registry's 173c87a5...");
    check_has(err.msg, "datasets/fetch wikitext2");

    /* a folder where the file should be */
    pb_test_join(file, sizeof file, dir, "ptb");
    REQUIRE(mkdir(file, 0777) == 0, "mkdir");
    pb_test_join(sub, sizeof sub, file, "ptb.valid.txt");
    REQUIRE(mkdir(sub, 0777) == 0, "mkdir");
    CHECK(pb_data_path(dir, "ptb", NULL, NULL, true, &path, &err) == -1);
    check_has(err.msg, "not a regular file");

    /* C4: not bundled, hash and size not recorded: says so and how to get it */
    CHECK(pb_data_path(dir, "c4", NULL, NULL, true, &path, &err) == -1);
    CHECK(one_line(err.msg));
    check_has(err.msg, "c4/c4-validation.00000-of-00008.json: missing; expected size not recorded (sha256 not recorded)");
    check_has(err.msg, "allenai/c4");
    check_has(err.msg, "run datasets/fetch c4");
    /* ptb train has a gzip'd download */
    const pb_data_file *fs;
    int n;
    REQUIRE(pb_data_files("ptb", "train", &fs, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 1 && fs[0].gunzip && fs[0].url && fs[0].bytes == 5101618);
    pb_test_rm_rf(dir);
}

static void test_names(void) {
    pb_err err = {0};
    const pb_data_info *in;
    CHECK(pb_data_info_get("wikitext3", &in, &err) == -1);
    check_has(err.msg, "unknown dataset 'wikitext3'; known datasets: wikitext2, ptb, tinystories, c4, boolq");
    const char *s;
    CHECK(pb_data_split_name("ptb", NULL, &s, &err) == 0 && !strcmp(s, "valid"));
    CHECK(pb_data_split_name("ptb", "validation", &s, &err) == 0 && !strcmp(s, "valid"));
    CHECK(pb_data_split_name("piqa", "valid", &s, &err) == 0 && !strcmp(s, "validation"));
    CHECK(pb_data_split_name("wikitext2", "train", &s, &err) == -1);
    check_has(err.msg, "wikitext2: unknown split 'train'; its splits: test, valid");
    CHECK(pb_data_default_split("c4") && !strcmp(pb_data_default_split("c4"), "validation"));
    CHECK(pb_data_default_split("nope") == NULL);
    REQUIRE(pb_data_info_get("c4", &in, &err) == 0, "%s", err.msg);
    CHECK(in->format == PB_TEXT_JSONL && !strcmp(in->join, " ") && in->max_docs == 1100 && in->truncate_windows == 256);
    REQUIRE(pb_data_info_get("ptb", &in, &err) == 0, "%s", err.msg);
    CHECK(in->format == PB_TEXT_LINES && !strcmp(in->join, "\n\n"));
    REQUIRE(pb_data_info_get("boolq", &in, &err) == 0, "%s", err.msg);
    CHECK(in->count == 3270 && !strcmp(in->kind, "task"));
    char text[256];
    pb_data_names("text", text, sizeof text);
    CHECK(strcmp(text, "wikitext2, ptb, tinystories, c4") == 0);
    pb_data_names("text", text, 12); /* truncation stays NUL-terminated */
    CHECK(strlen(text) < 12);
}

static void test_data_dir(void) {
    pb_err err = {0};
    char *d = NULL;
    CHECK(pb_data_dir(g_data, &d, &err) == 0 && d && !strcmp(d, g_data));
    free(d);
    CHECK(pb_data_dir("/nonexistent/prunebench", &d, &err) == -1 && d == NULL);
    check_has(err.msg, "--data-dir /nonexistent/prunebench: not a directory");
    setenv("PRUNEBENCH_DATA", g_data, 1);
    CHECK(pb_data_dir(NULL, &d, &err) == 0 && d && !strcmp(d, g_data));
    free(d);
    setenv("PRUNEBENCH_DATA", "/nonexistent/pbdata", 1);
    CHECK(pb_data_dir(NULL, &d, &err) == -1);
    check_has(err.msg, "PRUNEBENCH_DATA=/nonexistent/pbdata: not a directory");
    unsetenv("PRUNEBENCH_DATA");
    /* from a folder with neither ../shared/data nor ./data */
    char cwd[4096], tmp[4096];
    REQUIRE(getcwd(cwd, sizeof cwd), "getcwd");
    pb_test_fresh_dir(tmp, sizeof tmp, "data_registry_nodir");
    REQUIRE(chdir(tmp) == 0, "chdir");
    CHECK(pb_data_dir(NULL, &d, &err) == -1);
    check_has(err.msg, "no data folder");
    check_has(err.msg, "PRUNEBENCH_DATA");
    REQUIRE(mkdir("data", 0777) == 0, "mkdir");
    CHECK(pb_data_dir(NULL, &d, &err) == 0 && d && !strcmp(d, "data"));
    free(d);
    REQUIRE(chdir(cwd) == 0, "chdir back");
    pb_test_rm_rf(tmp);
}

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    pb_test_join(g_data, sizeof g_data, shared, "data");
    test_names();
    test_data_dir();
    test_bad_files();
    test_shared_files_verify();
    test_wikitext_num_bytes();
    return pb_test_done("data_registry");
}

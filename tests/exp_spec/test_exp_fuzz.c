/* test_exp_fuzz.c — pb_exp_load on damaged experiment files: every truncation of valid files
 * (at every byte) and every single-byte replacement by characters that mean something to YAML.
 * Each must load or fail with one located line "FILE:LINE:COL: ..." with LINE inside the file,
 * and never crash or leak: run it in the ASan + UBSan build, where a crash or leak fails it. */
#include "exp.h"
#include "pb_test.h"

static const char *const samples[] = {
    /* block style, every section */
    "name: fuzz\n"
    "description: \"a file with every section\"  # a comment\n"
    "models:\n"
    "  - name: s260\n"
    "    path: ../models/s.gguf\n"
    "    tokenizer: 'tok512.bin'\n"
    "  - name: other\n"
    "    path: /abs/other\n"
    "calibration:\n"
    "  dataset: ptb\n"
    "  split: validation\n"
    "  samples: 4\n"
    "  seq_len: 32\n"
    "  sampling: contiguous\n"
    "methods:\n"
    "  - name: taylor+\n"
    "    method: depth\n"
    "    criterion: taylor\n"
    "    protect_first: 1\n"
    "    iterative: true\n"
    "  - name: lp\n"
    "    method: llm-pruner\n"
    "    criterion: param_second\n"
    "    aggregation: max\n"
    "    layers: \"0:2\"\n"
    "  - name: fl\n"
    "    criterion: ifv\n"
    "    structure: ul-um\n"
    "    bias_compensation: false\n"
    "sweep:\n"
    "  seed: [0, 1]\n"
    "  zip:\n"
    "    - ratio: [0.2, 0.35]\n"
    "      num_blocks: [1, 2]\n"
    "dense: true\n"
    "evaluation:\n"
    "  ppl:\n"
    "    datasets: [wikitext2, ptb, my/text.txt]\n"
    "    seq_len: 64\n"
    "    max_windows: 3\n"
    "    bos_per_window: true\n"
    "  zeroshot:\n"
    "    tasks: [boolq, arc_easy]\n"
    "    limit: 10\n"
    "  speed:\n"
    "    batch: [1, 2]\n"
    "    prompt_len: 16\n"
    "    gen_len: 8\n"
    "    repeats: 2\n"
    "recovery:\n"
    "  lora:\n"
    "    data: sft/alpaca.json\n"
    "    rank: 4\n"
    "    alpha: 8.5\n"
    "    dropout: 0\n"
    "    lr: 1e-4\n"
    "    batch: 8\n"
    "    micro_batch: 2\n"
    "published:\n"
    "  - model: LLaMA-7B\n"
    "    method: taylor+\n"
    "    ratio: 0.2\n"
    "    wikitext2: 20.2\n"
    "    note: >\n"
    "      folded text\n"
    "      on two lines\n",
    /* flow style */
    "{name: flow, models: [{name: a, path: a.bin}, {name: b, path: \"b c.bin\"}],\n"
    " methods: [{name: w, method: wanda-sp}, {name: r, criterion: random}, {name: m, criterion: l2}],\n"
    " sweep: {model: [b, a], method: [r, w, m], native: [0.1, 0.5], ratio: 0.2},\n"
    " evaluation: {zeroshot: {}, ppl: {datasets: ptb}}, dense: false,\n"
    " published: [{a: 1, b: two, c: null, d: \"q\\\"uote\"}]}\n",
    /* an ablation: criterion x granularity with an implied method */
    "name: ablation\n"
    "models: [{name: m, path: m.gguf}]\n"
    "methods:\n"
    "- name: abl\n"
    "sweep:\n"
    "  criterion: [magnitude, taylor, ppl]\n"
    "  granularity: [block, attn, mlp, module]\n"
    "  ratio: [0.1, 0.25]\n"
    "  seed: 3\n",
};

static int lines_of(const char *s, size_t n) {
    int k = 1;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

static long loads, ok;

static void try_load(const char *path, const char *text, size_t n) {
    pb_test_write_file(path, text, n);
    pb_err err = {0};
    pb_exp *e = NULL;
    loads++;
    if (pb_exp_load(path, &e, &err) == 0) {
        ok++;
        /* touch what a caller reads */
        for (int i = 0; i < e->n_runs; i++) CHECK(e->runs[i].label && e->runs[i].config_yaml && strlen(e->runs[i].run_id) == 12);
        pb_exp_free(e);
        return;
    }
    CHECK(e == NULL);
    size_t pl = strlen(path);
    int line = 0, col = 0, used = 0;
    bool located = !strncmp(err.msg, path, pl) && sscanf(err.msg + pl, ":%d:%d: %n", &line, &col, &used) == 2 && used > 0;
    CHECK_MSG(located && line >= 1 && line <= lines_of(text, n) + 1 && col >= 1, "not located: %s", err.msg);
    CHECK_MSG(!strchr(err.msg, '\n'), "more than one line: %s", err.msg);
}

int main(void) {
    char dir[2048], path[4096];
    /* tens of thousands of rewrites of one small file: in memory when /dev/shm is there (a
     * disk file system may flush each rewrite of a truncated file) */
    if (access("/dev/shm", W_OK) == 0) snprintf(dir, sizeof dir, "/dev/shm");
    else pb_test_fresh_dir(dir, sizeof dir, "exp_fuzz");
    snprintf(path, sizeof path, "%s/pb_exp_fuzz_%d.yaml", dir, (int)getpid());
    static const char repl[] = " \t\n:-[]{}\"'&*!#,?|>%@`\\0\xff\xc3";
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        const char *t = samples[s];
        size_t n = strlen(t);
        pb_err err = {0};
        pb_exp *e = NULL;
        pb_test_write_file(path, t, n);
        REQUIRE(pb_exp_load(path, &e, &err) == 0, "sample %zu does not load: %s", s, err.msg);
        CHECK(e->n_runs > 0);
        pb_exp_free(e);
        for (size_t k = 0; k <= n; k++) try_load(path, t, k);
        char *m = malloc(n + 1);
        REQUIRE(m, "out of memory");
        for (size_t i = 0; i < n; i++)
            for (size_t r = 0; r < sizeof repl - 1; r++) {
                memcpy(m, t, n + 1);
                m[i] = repl[r] == '0' ? 0 : repl[r];
                try_load(path, m, n);
            }
        /* each byte removed */
        for (size_t i = 0; i < n; i++) {
            memcpy(m, t, i);
            memcpy(m + i, t + i + 1, n - i);
            try_load(path, m, n - 1);
        }
        free(m);
    }
    unlink(path);
    fprintf(stderr, "%ld damaged files loaded, %ld of them valid\n", loads, ok);
    CHECK(ok > 0 && ok < loads);
    return pb_test_done("test_exp_fuzz");
}

/* test_exp_spec.c — valid experiment files: what pb_exp_load reads (models, calibration,
 * methods with their resolved prune options, evaluation, recovery, published rows), relative
 * path resolution, defaults, the expansion order and counts with zip groups, labels, the
 * canonical configuration (pinned text and run_id), that run_ids change with every setting
 * that decides a result and with nothing else, and that shards partition the runs. */
#include "exp.h"
#include "pb_test.h"

static char dir[2048];

/* Writes text to dir/name and loads it; the test stops when that fails. */
static pb_exp *load(const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pb_test_write_file(path, text, strlen(text));
    pb_err err = {0};
    pb_exp *e = NULL;
    REQUIRE(pb_exp_load(path, &e, &err) == 0, "%s: %s", name, err.msg);
    return e;
}

static char *replace(const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    REQUIRE(p, "'%s' not in the base text", from);
    size_t a = (size_t)(p - s), nf = strlen(from), nt = strlen(to), n = strlen(s);
    char *r = malloc(n - nf + nt + 1);
    REQUIRE(r, "out of memory");
    memcpy(r, s, a);
    memcpy(r + a, to, nt);
    memcpy(r + a + nt, p + nf, n - a - nf + 1);
    return r;
}

static const char *join(const char *a, const char *b) {
    static char buf[4][4096];
    static int k;
    char *r = buf[k++ % 4];
    snprintf(r, 4096, "%s/%s", a, b);
    return r;
}

static bool streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* ---- a quickstart-like file ----------------------------------------------------------- */

static const char *QS =
    "name: quickstart\n"
    "description: \"depth and width pruning at two ratios\"\n"
    "models:\n"
    "  - name: stories260K\n"
    "    path: ../models/stories260K.gguf\n"
    "    tokenizer: ../models/tok512.bin\n"
    "  - name: abs\n"
    "    path: /abs/model\n"
    "calibration:\n"
    "  dataset: tinystories\n"
    "  samples: 8\n"
    "  seq_len: 64\n"
    "  sampling: contiguous\n"
    "methods:\n"
    "  - name: taylor+\n"
    "    method: depth\n"
    "    criterion: taylor\n"
    "    protect_first: 1\n"
    "    protect_last: 1\n"
    "  - name: flap\n"
    "    criterion: wifv\n"
    "  - name: llmp\n"
    "    method: llm-pruner\n"
    "    criterion: param_mix\n"
    "    aggregation: mean\n"
    "    layers: \"1:4\"\n"
    "sweep:\n"
    "  model: [stories260K]\n"
    "  ratio: [0.1, 0.2]\n"
    "  seed: [0, 7]\n"
    "evaluation:\n"
    "  ppl: {datasets: [wikitext2, ppl.txt], seq_len: 128, max_windows: 8}\n"
    "  zeroshot: {tasks: [boolq, piqa], limit: 20}\n"
    "  speed: {batch: [1, 4], gen_len: 16}\n"
    "recovery:\n"
    "  lora: {data: ../sft/alpaca.json, rank: 4, lr: 2e-4, max_steps: 10}\n"
    "published:\n"
    "  - {model: LLaMA-7B, method: taylor+, ratio: 0.2, wikitext2: 20.2, ptb: \"32.4\", note: two words, neg: -1.5}\n";

/* The canonical configuration of run 2, written out by hand: it is what run_ids hash, so a
 * change here changes every run_id (and makes finished results look unfinished). */
static const char *QS_RUN2 =
    "model:\n  name: stories260K\n  path: ../models/stories260K.gguf\n  tokenizer: ../models/tok512.bin\n"
    "prune:\n  method: depth\n  criterion: taylor\n  granularity: null\n  protect_first: 1\n  protect_last: 1\n"
    "  iterative: false\n  layers: null\n  aggregation: null\n  structure: null\n  metric: null\n"
    "  bias_compensation: true\n  ratio: 0.1\n  native: null\n  num_blocks: null\n"
    "seed: 0\n"
    "calibration:\n  dataset: tinystories\n  split: valid\n  samples: 8\n  seq_len: 64\n  sampling: contiguous\n"
    "evaluation:\n  ppl:\n    datasets: [wikitext2, ppl.txt]\n    seq_len: 128\n    max_windows: 8\n"
    "    bos_per_window: false\n  zeroshot:\n    tasks: [boolq, piqa]\n    limit: 20\n"
    "  speed:\n    batch: [1, 4]\n    prompt_len: 128\n    gen_len: 16\n    repeats: 3\n"
    "recovery:\n  lora:\n    data: ../sft/alpaca.json\n    format: alpaca\n    rank: 4\n    alpha: 16.0\n"
    "    dropout: 0.05\n    lr: 0.0002\n    epochs: 2\n    max_steps: 10\n    batch: 64\n    micro_batch: 4\n"
    "    cutoff: 256\n    val_size: 0\n";

static void test_quickstart(void) {
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/qs", dir);
    mkdir(sub, 0777);
    pb_exp *e = load("qs/exp.yaml", QS);
    CHECK(streq(e->name, "quickstart") && streq(e->description, "depth and width pruning at two ratios"));
    CHECK(streq(e->path, join(dir, "qs/exp.yaml")));
    REQUIRE(e->n_models == 2 && e->n_methods == 3, "models %d methods %d", e->n_models, e->n_methods);
    /* paths against the file's folder; absolute ones as they are */
    CHECK(streq(e->models[0].path, join(sub, "../models/stories260K.gguf")));
    CHECK(streq(e->models[0].tokenizer, join(sub, "../models/tok512.bin")));
    CHECK(streq(e->models[1].path, "/abs/model") && e->models[1].tokenizer == NULL);
    CHECK(streq(e->calib.dataset, "tinystories") && e->calib.split == NULL && e->calib.samples == 8 &&
          e->calib.seq_len == 64 && e->calib.sampling == PB_CALIB_CONTIGUOUS);
    CHECK(e->eval.n_ppl == 2 && streq(e->eval.ppl_datasets[0], "wikitext2") &&
          streq(e->eval.ppl_datasets[1], join(sub, "ppl.txt")));
    CHECK(e->eval.ppl_seq_len == 128 && e->eval.ppl_max_windows == 8 && !e->eval.ppl_bos_per_window);
    CHECK(e->eval.n_tasks == 2 && streq(e->eval.tasks[0], "boolq") && streq(e->eval.tasks[1], "piqa") &&
          e->eval.zs_limit == 20);
    CHECK(e->eval.n_speed == 2 && e->eval.speed_batch[0] == 1 && e->eval.speed_batch[1] == 4 &&
          e->eval.speed_prompt_len == 128 && e->eval.speed_gen_len == 16 && e->eval.speed_repeats == 3);
    const pb_exp_lora *l = &e->lora;
    CHECK(l->enabled && streq(l->data, join(sub, "../sft/alpaca.json")) && streq(l->format, "alpaca"));
    CHECK(l->rank == 4 && l->lr == 2e-4 && l->max_steps == 10 && l->alpha == 16.0 && l->dropout == 0.05 &&
          l->epochs == 2 && l->batch == 64 && l->micro_batch == 4 && l->cutoff == 256 && l->val_size == 0);
    CHECK(e->dense);
    CHECK(streq(e->published_yaml, "- model: LLaMA-7B\n  method: taylor+\n  ratio: 0.2\n  wikitext2: 20.2\n"
                                   "  ptb: \"32.4\"\n  note: \"two words\"\n  neg: -1.5\n"));
    /* dense runs first, then model x method x ratio x seed, seed fastest */
    static const char *const labels[] = {
        "stories260K/dense", "abs/dense",
        "stories260K/taylor+/ratio=0.1/seed=0", "stories260K/taylor+/ratio=0.1/seed=7",
        "stories260K/taylor+/ratio=0.2/seed=0", "stories260K/taylor+/ratio=0.2/seed=7",
        "stories260K/flap/ratio=0.1/seed=0", "stories260K/flap/ratio=0.1/seed=7",
        "stories260K/flap/ratio=0.2/seed=0", "stories260K/flap/ratio=0.2/seed=7",
        "stories260K/llmp/ratio=0.1/seed=0", "stories260K/llmp/ratio=0.1/seed=7",
        "stories260K/llmp/ratio=0.2/seed=0", "stories260K/llmp/ratio=0.2/seed=7"};
    REQUIRE(e->n_runs == 14, "%d runs", e->n_runs);
    for (int i = 0; i < 14; i++) CHECK_MSG(streq(e->runs[i].label, labels[i]), "run %d: %s", i, e->runs[i].label);
    for (int i = 0; i < 2; i++) {
        const pb_exp_run *r = &e->runs[i];
        CHECK(r->model == i && r->method == -1 && r->prune.method == NULL && r->prune.ratio < 0 && r->prune.count < 0);
    }
    const pb_exp_run *r = &e->runs[3];
    CHECK(r->model == 0 && r->method == 0 && r->seed == 7 && r->prune.seed == 7);
    CHECK(streq(r->prune.method, "depth") && streq(r->prune.criterion, "taylor") && r->prune.granularity == PB_S_BLOCK &&
          !r->prune.module_joint && r->prune.protect_first == 1 && r->prune.protect_last == 1);
    CHECK(r->prune.ratio == 0.1 && r->prune.count == -1 && r->prune.native == -1.0 && r->prune.calib == NULL);
    r = &e->runs[8];   /* the criterion wifv implies FLAP, as its metric */
    CHECK(r->method == 1 && streq(r->prune.method, "flap") && r->prune.criterion == NULL && streq(r->prune.metric, "wifv") &&
          r->prune.ratio == 0.2 && r->seed == 0);
    r = &e->runs[13];
    CHECK(streq(r->prune.method, "llm-pruner") && streq(r->prune.criterion, "param_mix") &&
          streq(r->prune.aggregation, "mean") && r->prune.layer_start == 1 && r->prune.layer_end == 4 && r->seed == 7);
    /* the canonical configuration and its hash */
    CHECK_MSG(streq(e->runs[2].config_yaml, QS_RUN2), "run 2 configuration:\n%s", e->runs[2].config_yaml);
    CHECK_MSG(streq(e->runs[2].run_id, "a8c7bef53b94"), "run 2 run_id %s", e->runs[2].run_id);
    for (int i = 0; i < e->n_runs; i++) {
        char hex[65];
        pb_sha256_hex(e->runs[i].config_yaml, strlen(e->runs[i].config_yaml), hex);
        CHECK(strlen(e->runs[i].run_id) == 12 && !strncmp(hex, e->runs[i].run_id, 12));
        for (int j = 0; j < i; j++) CHECK(strcmp(e->runs[i].run_id, e->runs[j].run_id) != 0);
    }
    CHECK(strstr(e->runs[0].config_yaml, "prune: null\n") && !strstr(e->runs[0].config_yaml, "recovery"));
    /* the same file gives byte-identical configurations */
    pb_exp *again = load("qs/exp.yaml", QS);
    for (int i = 0; i < e->n_runs; i++) CHECK(streq(again->runs[i].config_yaml, e->runs[i].config_yaml));
    pb_exp_free(again);
    /* shards: run i in shard i mod n + 1, every run in exactly one */
    for (int n = 1; n <= 6; n++)
        for (int i = 0; i < e->n_runs; i++) {
            int in = 0;
            for (int k = 1; k <= n; k++) in += pb_exp_in_shard(i, k, n);
            CHECK(in == 1 && pb_exp_in_shard(i, i % n + 1, n));
        }
    CHECK(!pb_exp_in_shard(0, 0, 2) && !pb_exp_in_shard(0, 3, 2) && !pb_exp_in_shard(-1, 1, 1) && !pb_exp_in_shard(0, 1, 0));
    pb_exp_free(e);
}

/* ---- run_ids: every setting that decides a result changes them, nothing else does ------- */

static const char *IDS =
    "name: ids\n"
    "models:\n  - name: m\n    path: m.gguf\n"
    "calibration: {dataset: wikitext2, samples: 10, seq_len: 128, sampling: random}\n"
    "methods:\n  - name: d\n    method: depth\n    criterion: taylor\n"
    "sweep:\n  ratio: [0.2]\n  seed: [0]\n"
    "evaluation:\n  ppl: {datasets: [wikitext2], seq_len: 128}\n  zeroshot: {tasks: [boolq], limit: 0}\n  speed: {batch: [1]}\n"
    "recovery:\n  lora: {data: d.json}\n";

static void test_run_ids(void) {
    pb_exp *base = load("ids.yaml", IDS);
    REQUIRE(base->n_runs == 2, "%d runs", base->n_runs);
    char id0[13], id1[13];
    memcpy(id0, base->runs[0].run_id, 13);
    memcpy(id1, base->runs[1].run_id, 13);
    pb_exp_free(base);
    static const char *const changes[][3] = {
        {"path: m.gguf", "path: m2.gguf", "dense"},
        {"    path: m.gguf\n", "    path: m.gguf\n    tokenizer: t.bin\n", "dense"},
        {"  - name: m\n", "  - name: m2\n", "dense"},
        {"samples: 10", "samples: 11", ""},
        {"seq_len: 128, sampling", "seq_len: 64, sampling", ""},
        {"sampling: random", "sampling: contiguous", ""},
        {"dataset: wikitext2, samples", "dataset: ptb, samples", ""},
        {"dataset: wikitext2, samples", "dataset: wikitext2, split: valid, samples", ""},
        {"dataset: wikitext2, samples", "dataset: calib/text.txt, samples", ""},
        {"criterion: taylor", "criterion: magnitude", ""},
        {"    criterion: taylor\n", "    criterion: taylor\n    protect_first: 1\n", ""},
        {"    criterion: taylor\n", "    criterion: taylor\n    protect_last: 1\n", ""},
        {"    criterion: taylor\n", "    criterion: taylor\n    iterative: true\n", ""},
        {"    criterion: taylor\n", "    criterion: taylor\n    granularity: attn\n", ""},
        {"    criterion: taylor\n", "    criterion: taylor\n    granularity: module\n", ""},
        {"ratio: [0.2]", "ratio: [0.25]", ""},
        {"ratio: [0.2]", "num_blocks: [1]", ""},
        {"seed: [0]", "seed: [1]", ""},
        {"{datasets: [wikitext2], seq_len: 128}", "{datasets: [wikitext2], seq_len: 256}", "dense"},
        {"{datasets: [wikitext2], seq_len: 128}", "{datasets: [wikitext2, ptb], seq_len: 128}", "dense"},
        {"{datasets: [wikitext2], seq_len: 128}", "{datasets: [wikitext2], seq_len: 128, max_windows: 4}", "dense"},
        {"{datasets: [wikitext2], seq_len: 128}", "{datasets: [wikitext2], seq_len: 128, bos_per_window: true}", "dense"},
        {"  ppl: {datasets: [wikitext2], seq_len: 128}\n", "", "dense"},
        {"tasks: [boolq]", "tasks: [piqa]", "dense"},
        {"limit: 0", "limit: 5", "dense"},
        {"  zeroshot: {tasks: [boolq], limit: 0}\n", "", "dense"},
        {"batch: [1]}", "batch: [2]}", "dense"},
        {"batch: [1]}", "batch: [1], repeats: 5}", "dense"},
        {"batch: [1]}", "batch: [1], prompt_len: 64}", "dense"},
        {"{data: d.json}", "{data: e.json}", ""},
        {"{data: d.json}", "{data: d.json, rank: 16}", ""},
        {"{data: d.json}", "{data: d.json, lr: 3e-4}", ""},
        {"{data: d.json}", "{data: d.json, format: text}", ""},
        {"recovery:\n  lora: {data: d.json}\n", "", ""},
    };
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        char *t = replace(IDS, changes[i][0], changes[i][1]);
        pb_exp *e = load("ids_changed.yaml", t);
        CHECK_MSG(e->n_runs == 2 && strcmp(e->runs[1].run_id, id1) != 0, "'%s' -> '%s' kept run_id %s",
                  changes[i][0], changes[i][1], id1);
        /* the dense run depends on the model and the evaluation only */
        bool dense_same = !strcmp(e->runs[0].run_id, id0);
        CHECK_MSG(dense_same == !*changes[i][2], "'%s' -> '%s': dense run_id %s (base %s)", changes[i][0], changes[i][1],
                  e->runs[0].run_id, id0);
        pb_exp_free(e);
        free(t);
    }
    static const char *const neutral[][2] = {
        {"name: ids\n", "name: other\ndescription: not part of a run\n"},
        {"  - name: d\n", "  - name: renamed\n"},
        {"recovery:", "published:\n  - {model: x, ppl: 1.5}\nrecovery:"},
        {", sampling: random}", "}"},                                  /* the default, written or not */
        {"dataset: wikitext2, samples", "dataset: wikitext2, split: test, samples"},   /* the default split */
        {"calibration: {dataset: wikitext2, samples: 10, seq_len: 128, sampling: random}\n",
         "calibration:\n  sampling: random   # block style, other key order\n  seq_len: 128\n  samples: 10\n"},
        {"sweep:\n  ratio: [0.2]\n  seed: [0]\n", "sweep: {seed: 0, ratio: 0.20}\n"},
        {"sweep:\n  ratio: [0.2]\n  seed: [0]\n", "sweep:\n  zip:\n    - {ratio: [0.2], seed: [0]}\n"},
    };
    for (size_t i = 0; i < sizeof neutral / sizeof neutral[0]; i++) {
        char *t = replace(IDS, neutral[i][0], neutral[i][1]);
        pb_exp *e = load("ids_neutral.yaml", t);
        CHECK_MSG(e->n_runs == 2 && !strcmp(e->runs[1].run_id, id1) && !strcmp(e->runs[0].run_id, id0),
                  "'%s' -> '%s' changed the run_ids", neutral[i][0], neutral[i][1]);
        pb_exp_free(e);
        free(t);
    }
    /* dense: false drops the dense run and leaves the others as they were */
    char *t = replace(IDS, "recovery:", "dense: false\nrecovery:");
    pb_exp *e = load("ids_neutral.yaml", t);
    CHECK(e->n_runs == 1 && !strcmp(e->runs[0].run_id, id1));
    pb_exp_free(e);
    free(t);
}

/* ---- zip groups and the order of the product ------------------------------------------- */

static void test_zip(void) {
    pb_exp *e = load("zip.yaml",
                     "name: zips\n"
                     "models: [{name: a, path: a}, {name: b, path: b}]\n"
                     "methods:\n  - {name: dep, method: depth}\n  - {name: wid, method: llm-pruner}\n"
                     "sweep:\n  seed: [1, 2]\n  zip:\n    - {ratio: [0.2, 0.35], num_blocks: [2, 3], native: [0.25, 0.4]}\n"
                     "dense: false\n");
    REQUIRE(e->n_runs == 16, "%d runs", e->n_runs);
    int i = 0;
    for (int mo = 0; mo < 2; mo++)
        for (int me = 0; me < 2; me++)
            for (int z = 0; z < 2; z++)
                for (int s = 0; s < 2; s++, i++) {
                    const pb_exp_run *r = &e->runs[i];
                    char want[200];
                    snprintf(want, sizeof want, "%s/%s/ratio=%s/native=%s/num_blocks=%d/seed=%d", mo ? "b" : "a",
                             me ? "wid" : "dep", z ? "0.35" : "0.2", z ? "0.4" : "0.25", z ? 3 : 2, s + 1);
                    CHECK_MSG(streq(r->label, want), "run %d: %s, expected %s", i, r->label, want);
                    CHECK(r->model == mo && r->method == me && r->seed == (uint64_t)(s + 1));
                    /* each method takes its own amount: depth the block count, width the group ratio */
                    if (me == 0) CHECK(r->prune.count == (z ? 3 : 2) && r->prune.ratio < 0 && r->prune.native < 0);
                    else CHECK(r->prune.native == (z ? 0.4 : 0.25) && r->prune.ratio < 0 && r->prune.count < 0);
                }
    pb_exp_free(e);
    /* a zip group holding the method axis sits at the method's place; ratio alone is cartesian */
    e = load("zip2.yaml",
             "name: zips\n"
             "models: [{name: a, path: a}, {name: b, path: b}]\n"
             "methods:\n  - {name: dep, method: depth}\n  - {name: wid, method: llm-pruner}\n"
             "sweep:\n  ratio: [0.1, 0.2]\n  zip:\n    - {method: [dep, wid], seed: [5, 6]}\n"
             "dense: false\n");
    static const char *const want[] = {"a/dep/ratio=0.1/seed=5", "a/dep/ratio=0.2/seed=5", "a/wid/ratio=0.1/seed=6",
                                       "a/wid/ratio=0.2/seed=6", "b/dep/ratio=0.1/seed=5", "b/dep/ratio=0.2/seed=5",
                                       "b/wid/ratio=0.1/seed=6", "b/wid/ratio=0.2/seed=6"};
    REQUIRE(e->n_runs == 8, "%d runs", e->n_runs);
    for (i = 0; i < 8; i++) CHECK_MSG(streq(e->runs[i].label, want[i]), "run %d: %s", i, e->runs[i].label);
    CHECK(e->runs[1].prune.ratio == 0.2 && e->runs[2].seed == 6);
    pb_exp_free(e);
    /* criterion x granularity for an entry without a method: the method follows from them */
    e = load("ablation.yaml",
             "name: ablation\nmodels: [{name: m, path: m}]\nmethods: [{name: abl}]\n"
             "sweep:\n  criterion: [magnitude, taylor]\n  granularity: [block, module, channel]\n  ratio: 0.1\ndense: false\n");
    static const struct { const char *label, *method, *criterion; pb_struct_kind g; bool joint; } ab[] = {
        {"m/abl/criterion=magnitude/granularity=block/ratio=0.1/seed=0", "depth", "magnitude", PB_S_BLOCK, false},
        {"m/abl/criterion=magnitude/granularity=module/ratio=0.1/seed=0", "depth", "magnitude", PB_S_ATTN, true},
        {"m/abl/criterion=magnitude/granularity=channel/ratio=0.1/seed=0", "magnitude", NULL, PB_S_CHANNEL, false},
        {"m/abl/criterion=taylor/granularity=block/ratio=0.1/seed=0", "depth", "taylor", PB_S_BLOCK, false},
        {"m/abl/criterion=taylor/granularity=module/ratio=0.1/seed=0", "depth", "taylor", PB_S_ATTN, true},
        {"m/abl/criterion=taylor/granularity=channel/ratio=0.1/seed=0", "llm-pruner", "taylor", PB_S_CHANNEL, false}};
    REQUIRE(e->n_runs == 6, "%d runs", e->n_runs);
    for (i = 0; i < 6; i++) {
        const pb_prune_opts *o = &e->runs[i].prune;
        CHECK_MSG(streq(e->runs[i].label, ab[i].label), "run %d: %s", i, e->runs[i].label);
        CHECK_MSG(streq(o->method, ab[i].method) && (ab[i].criterion ? streq(o->criterion, ab[i].criterion) : !o->criterion) &&
                  o->granularity == ab[i].g && o->module_joint == ab[i].joint, "run %d: %s %s", i, o->method,
                  o->criterion ? o->criterion : "(null)");
    }
    pb_exp_free(e);
}

/* ---- defaults, implied methods, relative paths ------------------------------------------- */

static void test_defaults(void) {
    pb_exp *e = load("mini.yaml", "name: mini\nmodels: [{name: m, path: m}]\nmethods: [{name: d, method: depth}]\n"
                                  "sweep: {ratio: 0.5}\n");
    CHECK(e->description == NULL && e->published_yaml == NULL && e->dense && !e->lora.enabled);
    CHECK(streq(e->calib.dataset, "wikitext2") && e->calib.split == NULL && e->calib.samples == 10 &&
          e->calib.seq_len == 128 && e->calib.sampling == PB_CALIB_RANDOM);
    CHECK(e->eval.n_ppl == 0 && e->eval.n_tasks == 0 && e->eval.n_speed == 0);
    CHECK(streq(e->models[0].path, join(dir, "m")) && e->models[0].tokenizer == NULL);
    REQUIRE(e->n_runs == 2, "%d runs", e->n_runs);
    CHECK(streq(e->runs[0].label, "m/dense") && streq(e->runs[1].label, "m/d/ratio=0.5/seed=0"));
    const pb_prune_opts *o = &e->runs[1].prune;
    CHECK(streq(o->method, "depth") && o->criterion == NULL && o->granularity == PB_S_BLOCK && o->ratio == 0.5 &&
          o->count == -1 && o->native == -1.0 && o->layer_start == -1 && o->protect_first == 0 && !o->iterative &&
          o->aggregation == NULL && o->metric == NULL && o->structure == NULL && !o->no_bias_compensation && o->seed == 0);
    CHECK(e->runs[1].seed == 0 && strstr(e->runs[1].config_yaml, "split: test\n"));
    pb_exp_free(e);
    /* sections given empty run with their defaults */
    e = load("evaldefaults.yaml", "name: ev\nmodels: [{name: m, path: m}]\nmethods: [{name: d, method: depth}]\n"
                                  "sweep: {ratio: 0.5}\nevaluation:\n  ppl:\n  zeroshot: {}\n  speed:\n");
    CHECK(e->eval.n_ppl == 2 && streq(e->eval.ppl_datasets[0], "wikitext2") && streq(e->eval.ppl_datasets[1], "ptb"));
    CHECK(e->eval.n_tasks == 7 && streq(e->eval.tasks[0], "boolq") && streq(e->eval.tasks[6], "openbookqa"));
    CHECK(e->eval.n_speed == 1 && e->eval.speed_batch[0] == 1 && e->eval.speed_prompt_len == 128 &&
          e->eval.speed_gen_len == 128 && e->eval.speed_repeats == 3 && e->eval.ppl_seq_len == 128);
    pb_exp_free(e);
    /* options of the methods, and methods implied by criteria as `prunebench prune` implies them */
    e = load("implied.yaml",
             "name: implied\nmodels: [{name: m, path: m}]\n"
             "methods:\n"
             "  - {name: mag, criterion: magnitude, granularity: head}\n"
             "  - {name: wanda, criterion: wanda}\n"
             "  - {name: rnd, criterion: random}\n"
             "  - {name: fl, method: flap, metric: wifn, structure: ul-um, bias_compensation: false}\n"
             "  - {name: tl, criterion: taylor, granularity: head, layers: \"0:3\"}\n"
             "  - {name: mods, method: depth, criterion: ppl, granularity: module, iterative: true}\n"
             "  - {name: l1, method: magnitude, criterion: l1}\n"
             "sweep: {ratio: [0.3]}\ndense: false\n");
    REQUIRE(e->n_runs == 7, "%d runs", e->n_runs);
    const pb_exp_run *r = e->runs;
    CHECK(streq(r[0].prune.method, "magnitude") && !r[0].prune.criterion && r[0].prune.granularity == PB_S_HEAD);
    CHECK(streq(r[1].prune.method, "wanda-sp") && !r[1].prune.criterion);
    CHECK(streq(r[2].prune.method, "random") && !r[2].prune.criterion);
    CHECK(streq(r[3].prune.method, "flap") && streq(r[3].prune.metric, "wifn") && streq(r[3].prune.structure, "ul-um") &&
          r[3].prune.no_bias_compensation);
    CHECK(streq(r[4].prune.method, "llm-pruner") && streq(r[4].prune.criterion, "taylor") && r[4].prune.layer_start == 0 &&
          r[4].prune.layer_end == 3);
    CHECK(streq(r[5].prune.method, "depth") && streq(r[5].prune.criterion, "ppl") && r[5].prune.module_joint &&
          r[5].prune.granularity == PB_S_ATTN && r[5].prune.iterative);
    CHECK(streq(r[6].prune.method, "magnitude") && streq(r[6].prune.criterion, "l1"));
    for (int i = 0; i < 7; i++) CHECK(r[i].prune.ratio == 0.3);
    CHECK(streq(e->methods[0].prune.method, "magnitude") && streq(e->methods[3].prune.method, "flap"));
    pb_exp_free(e);
    /* the sweep's criterion replaces the entry's, also where the entry's implied the method */
    e = load("implied2.yaml", "name: implied\nmodels: [{name: m, path: m}]\nmethods: [{name: f, criterion: wifv}]\n"
                              "sweep: {criterion: [wifv, ifv], ratio: [0.3]}\ndense: false\n");
    REQUIRE(e->n_runs == 2, "%d runs", e->n_runs);
    CHECK(streq(e->runs[0].prune.metric, "wifv") && streq(e->runs[1].prune.metric, "ifv"));
    CHECK(streq(e->runs[1].prune.method, "flap") && !e->runs[1].prune.criterion && streq(e->methods[0].prune.metric, "wifv"));
    pb_exp_free(e);
}

static void test_paths(void) {
    char sub[4096], cwd[4096];
    snprintf(sub, sizeof sub, "%s/deep/er", dir);
    snprintf(cwd, sizeof cwd, "%s/deep", dir);
    mkdir(cwd, 0777);
    mkdir(sub, 0777);
    static const char *text =
        "name: paths\nmodels: [{name: m, path: w/m.gguf, tokenizer: /abs/tok.bin}]\n"
        "calibration: {dataset: c/calib.txt}\nmethods: [{name: d, method: depth}]\nsweep: {ratio: 0.1}\n"
        "evaluation: {ppl: {datasets: [p.jsonl, ptb]}}\nrecovery: {lora: {data: ../sft.json}}\n";
    pb_exp *e = load("deep/er/exp.yaml", text);
    CHECK(streq(e->models[0].path, join(sub, "w/m.gguf")) && streq(e->models[0].tokenizer, "/abs/tok.bin"));
    CHECK(streq(e->calib.dataset, join(sub, "c/calib.txt")) && e->calib.split == NULL);
    CHECK(streq(e->eval.ppl_datasets[0], join(sub, "p.jsonl")) && streq(e->eval.ppl_datasets[1], "ptb"));
    CHECK(streq(e->lora.data, join(sub, "../sft.json")));
    /* the configuration records paths as written: moving the experiment keeps its run_ids */
    CHECK(strstr(e->runs[1].config_yaml, "  path: w/m.gguf\n") && strstr(e->runs[1].config_yaml, "dataset: c/calib.txt\n") &&
          strstr(e->runs[1].config_yaml, "split: null\n"));
    char id[13];
    memcpy(id, e->runs[1].run_id, 13);
    pb_exp_free(e);
    /* a bare file name: paths relative to the working folder, which is the file's */
    char old[4096];
    REQUIRE(getcwd(old, sizeof old), "getcwd");
    REQUIRE(chdir(sub) == 0, "chdir %s", sub);
    pb_err err = {0};
    int rc = pb_exp_load("exp.yaml", &e, &err);
    REQUIRE(chdir(old) == 0, "chdir back");
    REQUIRE(rc == 0, "%s", err.msg);
    CHECK(streq(e->models[0].path, "w/m.gguf") && streq(e->calib.dataset, "c/calib.txt") &&
          streq(e->lora.data, "../sft.json") && streq(e->runs[1].run_id, id));
    pb_exp_free(e);
}

int main(void) {
    pb_test_fresh_dir(dir, sizeof dir, "exp_spec");
    test_quickstart();
    test_run_ids();
    test_zip();
    test_defaults();
    test_paths();
    return pb_test_done("test_exp_spec");
}

/* test_exp_malformed.c — a catalogue of malformed experiment files: each must fail to load
 * with one line "FILE:LINE:COL: message" at the exact place of the problem (1-based, as
 * libyaml marks it + 1) and a message saying what is wrong, and leave nothing allocated
 * (LeakSanitizer in the sanitizer build). When the prunebench CLI is built (PB_BIN), each
 * file also goes through `prunebench run FILE --dry-run`, which must exit 1 with
 * "prunebench: error: FILE:LINE:COL: ..." on stderr. */
#include "exp.h"
#include "pb_test.h"

#include <sys/wait.h>

/* The smallest valid file; the entries below are built from it so that line numbers are easy
 * to count: 1 name, 2 models, 3-4 the model, 5 methods, 6-7 the method, 8 sweep, 9 ratio. */
#define MODELS "name: cat\nmodels:\n  - name: m\n    path: m.gguf\n"
#define METHODS "methods:\n  - name: d\n    method: depth\n"
#define SWEEP "sweep:\n  ratio: [0.2]\n"
#define BASE MODELS METHODS SWEEP

typedef struct {
    const char *name, *text, *loc, *frag;
} bad;

static const bad catalogue[] = {
    /* YAML itself */
    {"syntax_unclosed_flow", MODELS METHODS "sweep:\n  ratio: [0.2, 0.3\n", "10:1", "YAML syntax error"},
    {"syntax_colon", "name: cat\nmodels: a: b\n", "2:10", "mapping values are not allowed"},
    {"tab_indent", "name: cat\nmodels:\n\t- name: m\n", "3:1", "not tabs"},
    {"tab_in_mapping", "name: cat\nmodels:\n  - name: m\n\tpath: m.gguf\n", "4:1", "not tabs"},
    {"invalid_utf8", "name: \"x\xff\"\n", "1:9", "UTF-8"},
    {"nul_in_value", "name: \"a\\0b\"\n", "1:7", "NUL character"},
    {"anchor", "name: &n cat\n", "1:7", "anchors (&n) are not supported"},
    {"alias", "name: cat\ndescription: *x\n", "2:14", "aliases (*x) are not supported"},
    {"tag", "name: !!str cat\n", "1:7", "tags (tag:yaml.org,2002:str) are not supported"},
    {"duplicate_key", "name: cat\nname: dog\n", "2:1", "duplicate key 'name' (first given at line 1)"},
    {"duplicate_nested_key", BASE "calibration:\n  samples: 4\n  samples: 5\n", "12:3", "duplicate key 'samples'"},
    {"second_document", BASE "---\nname: other\n", "10:1", "a second YAML document"},
    {"key_not_text", "? [a]\n: b\n", "1:3", "a key must be plain text, not a list"},
    {"deep_nesting",
     "name: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n", "1:70", "nested more than 64 levels deep"},
    /* the shape of the file */
    {"empty_file", "", "1:1", "holds no experiment"},
    {"comment_only", "# nothing here\n", "1:1", "holds no experiment"},
    {"top_level_list", "- a\n- b\n", "1:1", "must be a mapping of keys"},
    {"top_level_scalar", "just text\n", "1:1", "must be a mapping of keys (name, models, methods, ...), not 'just text'"},
    {"unknown_top_key", "name: cat\nmodel: []\n", "2:1", "unknown key 'model' in the experiment (did you mean 'models'?)"},
    {"unknown_top_key_no_hint", BASE "colour: red\n", "10:1", "unknown key 'colour' in the experiment (known: name,"},
    {"missing_name", "models:\n  - name: m\n    path: m.gguf\n" METHODS SWEEP, "1:1", "'name' is missing"},
    {"missing_models", "name: cat\n" METHODS SWEEP, "1:1", "'models' is missing"},
    {"missing_methods", MODELS SWEEP, "1:1", "'methods' is missing"},
    {"bad_experiment_name", "name: a/b\nmodels: []\n", "1:7", "experiment name 'a/b' may only use"},
    /* models */
    {"empty_models", "name: cat\nmodels: []\n" METHODS SWEEP, "2:9", "'models' is an empty list"},
    {"models_not_list", "name: cat\nmodels: m.gguf\n", "2:9", "'models' must be a list, not 'm.gguf'"},
    {"model_entry_not_map", "name: cat\nmodels: [m.gguf]\n", "2:10", "each entry of 'models' must be a mapping"},
    {"model_missing_path", "name: cat\nmodels:\n  - name: m\n" METHODS SWEEP, "3:5", "model 'm' has no 'path'"},
    {"model_misspelt_key", "name: cat\nmodels: [{name: m, pth: m.gguf}]\n", "2:20", "(did you mean 'path'?)"},
    {"duplicate_model_name", "name: cat\nmodels:\n  - name: m\n    path: m.gguf\n  - name: m\n    path: n.gguf\n" METHODS SWEEP,
     "5:11", "duplicate model name 'm' (first at line 3)"},
    /* calibration */
    {"misspelt_nested", BASE "calibration:\n  sampels: 4\n", "11:3", "unknown key 'sampels' in calibration (did you mean 'samples'?)"},
    {"wrong_type", BASE "calibration:\n  samples: ten\n", "11:12", "'samples' must be a positive integer, not 'ten'"},
    {"quoted_number", BASE "calibration:\n  samples: \"10\"\n", "11:12", "(quoted, so text)"},
    {"seq_len_1", BASE "calibration:\n  seq_len: 1\n", "11:12", "'seq_len' must be an integer from 2 to 1048576, not '1'"},
    {"unknown_sampling", BASE "calibration:\n  sampling: randm\n", "11:13", "unknown sampling 'randm'"},
    {"unknown_dataset", BASE "calibration:\n  dataset: wikitex2\n", "11:12", "(did you mean 'wikitext2'?)"},
    {"unknown_split", BASE "calibration:\n  dataset: ptb\n  split: tset\n", "12:10", "unknown split 'tset'"},
    {"split_with_file", BASE "calibration:\n  dataset: calib.txt\n  split: test\n", "12:10", "'split' applies to registered datasets"},
    {"task_as_calibration", BASE "calibration:\n  dataset: boolq\n", "11:12", "'boolq' is a task dataset"},
    /* methods */
    {"unknown_method", MODELS "methods:\n  - name: d\n    method: dept\n" SWEEP, "7:13", "unknown method 'dept' (did you mean 'depth'?)"},
    {"unknown_criterion", MODELS "methods:\n  - name: d\n    method: depth\n    criterion: tayolr\n" SWEEP, "8:16",
     "unknown criterion 'tayolr' (did you mean 'taylor'?)"},
    {"criterion_for_method", MODELS "methods:\n  - name: d\n    method: flap\n    criterion: taylor\n" SWEEP, "8:16",
     "criterion 'taylor' does not apply to method flap (wifv, ifv, wifn)"},
    {"criterion_metric_disagree", MODELS "methods:\n  - name: f\n    criterion: wifv\n    metric: ifv\n" SWEEP, "7:16",
     "criterion 'wifv' and metric 'ifv' disagree"},
    {"no_method_no_criterion", MODELS "methods:\n  - name: d\n    protect_first: 1\n" SWEEP, "6:5",
     "gives neither 'method' nor a 'criterion'"},
    {"unknown_granularity", MODELS "methods:\n  - name: d\n    method: depth\n    granularity: blok\n" SWEEP, "8:18",
     "(did you mean 'block'?)"},
    {"granularity_for_method", MODELS "methods:\n  - name: d\n    method: depth\n    granularity: head\n" SWEEP, "8:18",
     "granularity 'head' does not apply to method depth"},
    {"option_for_method", MODELS "methods:\n  - name: d\n    method: flap\n    protect_first: 2\n" SWEEP, "8:20",
     "'protect_first' does not apply to method flap"},
    {"bad_layers", MODELS "methods:\n  - name: d\n    method: llm-pruner\n    layers: 4-30\n" SWEEP, "8:13",
     "'layers' must be START:END"},
    {"duplicate_method_name", MODELS "methods:\n  - name: d\n    method: depth\n  - name: d\n    method: flap\n" SWEEP, "8:11",
     "duplicate method name 'd' (first at line 6)"},
    {"methods_empty", MODELS "methods: []\n" SWEEP, "5:10", "'methods' is an empty list"},
    /* sweep */
    {"misspelt_sweep_key", MODELS METHODS "sweep:\n  ratios: [0.2]\n", "9:3", "unknown key 'ratios' in the sweep (did you mean 'ratio'?)"},
    {"ratio_out_of_range", MODELS METHODS "sweep:\n  ratio: [0.2, 1.5]\n", "9:16", "'ratio' must be a number in [0, 1), not '1.5'"},
    {"ratio_not_number", MODELS METHODS "sweep:\n  ratio: [twenty]\n", "9:11", "'ratio' must be a number in [0, 1), not 'twenty'"},
    {"empty_ratio_list", MODELS METHODS "sweep:\n  ratio: []\n", "9:10", "sweep axis 'ratio' is an empty list"},
    {"repeated_axis_value", MODELS METHODS "sweep:\n  ratio: [0.2, 0.20]\n", "9:16", "lists 0.20 twice (first at line 9)"},
    {"negative_seed", BASE "  seed: [-1]\n", "10:10", "'seed' must be a non-negative integer, not '-1'"},
    {"sweep_unknown_method", BASE "  method: [d, dd]\n", "10:15", "the sweep names an unknown method 'dd' (methods: d)"},
    {"sweep_unknown_model", BASE "  model: [n]\n", "10:11", "the sweep names an unknown model 'n' (models: m)"},
    {"zip_lengths_differ", MODELS METHODS "sweep:\n  zip:\n    - {ratio: [0.1, 0.2], num_blocks: [2]}\n", "10:27",
     "the lists of a zip group differ in length: 'num_blocks' has 1 value, 'ratio' has 2"},
    {"zip_repeats_axis", BASE "  zip:\n    - {ratio: [0.1], num_blocks: [2]}\n", "11:8",
     "'ratio' is both a sweep axis (line 9) and in a zip group"},
    {"zip_two_groups", MODELS METHODS "sweep:\n  zip:\n    - {ratio: [0.1]}\n    - {ratio: [0.2]}\n", "11:8",
     "'ratio' is in two zip groups (first at line 10)"},
    {"zip_not_list", MODELS METHODS "sweep:\n  zip: {ratio: [0.1]}\n", "9:8", "'zip' must be a list"},
    {"native_for_depth", MODELS METHODS "sweep:\n  native: [0.3]\n", "9:12", "method depth takes 'ratio' or 'num_blocks', not 'native'"},
    {"num_blocks_for_flap", MODELS "methods:\n  - name: f\n    method: flap\n" "sweep:\n  num_blocks: [2]\n", "9:16",
     "method flap takes 'ratio' or 'native', not 'num_blocks'"},
    {"no_amount", MODELS METHODS "sweep:\n  seed: [1]\n", "9:3", "the sweep gives no amount to prune"},
    {"no_sweep", MODELS METHODS, "1:1", "the sweep gives no amount to prune"},
    {"duplicate_runs", MODELS "methods:\n  - name: d\n    method: depth\n  - name: e\n    method: depth\n" SWEEP, "11:3",
     "runs 1 (m/d/ratio=0.2/seed=0) and 2 (m/e/ratio=0.2/seed=0) would be the same run"},
    /* other sections */
    {"bool_yes", BASE "dense: yes\n", "10:8", "'dense' must be true or false, not 'yes'"},
    {"unknown_task", BASE "evaluation:\n  zeroshot:\n    tasks: [boolq, piqq]\n", "12:20", "(did you mean 'piqa'?)"},
    {"unknown_ppl_dataset", BASE "evaluation:\n  ppl: {datasets: [ptbb]}\n", "11:20", "(did you mean 'ptb'?)"},
    {"speed_batch_zero", BASE "evaluation:\n  speed: {batch: [0]}\n", "11:19", "'batch' must be an integer from 1 to 65536, not '0'"},
    {"evaluation_misspelt", BASE "evaluation:\n  zero_shot: {}\n", "11:3", "(did you mean 'zeroshot'?)"},
    {"unknown_device", BASE "evaluation:\n  device: cdua\n", "11:11", "unknown device 'cdua' (cpu, cuda) (did you mean 'cuda'?)"},
    {"half_dtype_on_cpu", BASE "evaluation:\n  dtype: bf16\n", "11:10", "dtype bf16 needs device: cuda"},
    {"unknown_dtype", BASE "evaluation:\n  device: cuda\n  dtype: fp8\n", "12:10", "unknown dtype 'fp8'"},
    {"lora_no_data", BASE "recovery:\n  lora: {rank: 8}\n", "11:9", "'lora' has no 'data'"},
    {"lora_batch_multiple", BASE "recovery:\n  lora: {data: d.json, batch: 10, micro_batch: 4}\n", "11:48",
     "'batch' 10 is not a multiple of 'micro_batch' 4"},
    {"lora_dropout", BASE "recovery:\n  lora: {data: d.json, dropout: 1}\n", "11:33", "'dropout' must be a number in [0, 1)"},
    {"published_nested", BASE "published:\n  - {model: x, ppl: [1, 2]}\n", "11:21", "published values must be single numbers or text"},
    {"published_not_rows", BASE "published: [1, 2]\n", "10:13", "each row of 'published' must be a mapping"},
};

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* `prunebench run FILE --dry-run`: its exit status and its stderr's first line. */
static int run_cli(const char *bin, const char *file, char *line, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --dry-run 2>&1 >/dev/null", bin, file);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "cannot run %s", cmd);
    line[0] = 0;
    if (!fgets(line, (int)cap, p)) line[0] = 0;
    char rest[4096];
    while (fgets(rest, sizeof rest, p)) {}
    int st = pclose(p);
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') line[n - 1] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
    char dir[2048], path[4096];
    pb_test_fresh_dir(dir, sizeof dir, "exp_malformed");
    const char *bin = getenv("PB_BIN");
    bool cli = bin && access(bin, X_OK) == 0;
    if (!cli) fprintf(stderr, "note: %s not built; checking the library only\n", bin ? bin : "PB_BIN");
    int n = (int)(sizeof catalogue / sizeof catalogue[0]);
    CHECK(n >= 20);
    for (int i = 0; i < n; i++) {
        const bad *b = &catalogue[i];
        snprintf(path, sizeof path, "%s/%s.yaml", dir, b->name);
        pb_test_write_file(path, b->text, strlen(b->text));
        pb_err err = {0};
        pb_exp *e = (pb_exp *)1;
        int rc = pb_exp_load(path, &e, &err);
        char want[4200];
        snprintf(want, sizeof want, "%s:%s: ", path, b->loc);
        CHECK_MSG(rc == -1 && e == NULL, "%s: loaded (rc %d)", b->name, rc);
        CHECK_MSG(!strncmp(err.msg, want, strlen(want)), "%s: expected location %s, got: %s", b->name, b->loc, err.msg);
        CHECK_MSG(strstr(err.msg, b->frag) != NULL, "%s: expected '%s' in: %s", b->name, b->frag, err.msg);
        CHECK_MSG(!strchr(err.msg, '\n'), "%s: the message is more than one line", b->name);
        /* the line number is inside the file (or 1 for an empty one) */
        int line = atoi(b->loc);
        CHECK_MSG(line >= 1 && line <= count_lines(b->text) + 1, "%s: location outside the file", b->name);
        if (cli && rc == -1) {
            char got[2048], expect[4300];
            int code = run_cli(bin, path, got, sizeof got);
            snprintf(expect, sizeof expect, "prunebench: error: %s", err.msg);
            CHECK_MSG(code == 1, "%s: prunebench run --dry-run exited %d", b->name, code);
            CHECK_MSG(!strcmp(got, expect), "%s: prunebench printed '%s', expected '%s'", b->name, got, expect);
        }
    }
    /* a file that does not exist is an error naming it, without a location */
    snprintf(path, sizeof path, "%s/absent.yaml", dir);
    pb_err err = {0};
    pb_exp *e = NULL;
    CHECK(pb_exp_load(path, &e, &err) == -1 && e == NULL && strstr(err.msg, path));
    fprintf(stderr, "%d malformed files checked%s\n", n, cli ? " (library and CLI)" : " (library)");
    return pb_test_done("test_exp_malformed");
}

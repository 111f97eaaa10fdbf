/* cmd_compare.c — `prunebench compare DIR... [--format md|tex|csv] [--baseline RUN]`: the
 * papers' table from one or more experiment folders (their index.h5, and published.yaml when
 * the experiment carries the papers' numbers). The logic is in core/exp/compare*.c. */
#include "cli.h"
#include "compare.h"

#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_compare = {
    .name = "compare", .usage = "DIR... [--format md|tex|csv] [--baseline RUN_ID|LABEL]", .n_positional = 0, .run = run,
    .summary = "paper-style comparison table (PPL, zero-shot, speed) of experiment folders",
    .details = "Each DIR is an experiment's results folder (results/<name>): its index.h5 gives one row per\n"
               "run, grouped by model with the dense run first; numbers in parentheses are the difference to\n"
               "the dense run of the same model, or to --baseline (a run_id or label). Failed runs are listed\n"
               "with their status and error. When DIR/published.yaml holds the papers' numbers (written by\n"
               "`prunebench run` from the experiment's published: rows), they appear as (paper) rows under\n"
               "the matching run (same model, method and ratio), with ours - paper in parentheses.\n"
               "--format md (GitHub markdown, default), tex (booktabs tabular), csv (raw numbers, separate\n"
               "delta_* and vs_paper_* columns; accuracies x100).",
};

/* pb_cli_parse takes a fixed number of positionals; DIR... is any number, so the folders are
 * taken out of argv first (every option here takes a value, given as --opt V or --opt=V). */
static void split_dirs(int argc, char **argv, const pb_opt *opts, char **rest, int *n_rest, const char **dirs, int *n_dirs) {
    *n_rest = 0;
    *n_dirs = 0;
    rest[(*n_rest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            rest[(*n_rest)++] = argv[i];
            bool takes_value = false;
            for (const pb_opt *o = opts; o->name; o++)
                if (strcmp(a + 2, o->name) == 0 && o->kind != PB_OPT_FLAG) takes_value = true;
            if (takes_value && i + 1 < argc) rest[(*n_rest)++] = argv[++i];
        } else if (strcmp(a, "-h") == 0) {
            rest[(*n_rest)++] = argv[i];
        } else {
            dirs[(*n_dirs)++] = a;
        }
    }
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        {"format", PB_OPT_STR, "F", "md (default) | tex | csv", 0, 0, 0, 0},
        {"baseline", PB_OPT_STR, "RUN", "run_id or label of the run that deltas are taken to (default: the dense run "
                                        "of each model)", 0, 0, 0, 0},
        {0},
    };
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    pb_err err = {0};
    int code = PB_EXIT_ERROR, n_rest, n_dirs;
    pb_cmp *c = NULL;
    if (!rest || !dirs) {
        pb_err_set(&err, "out of memory");
        code = pb_cli_fail(&err);
        goto done;
    }
    split_dirs(argc, argv, opts, rest, &n_rest, dirs, &n_dirs);
    if (pb_cli_parse(&pb_cmd_compare, n_rest, rest, opts, NULL, &code)) goto done;
    if (n_dirs == 0) {
        code = pb_cli_usage_error("compare", "expected at least one experiment folder: %s", pb_cmd_compare.usage);
        goto done;
    }
    const char *fs = pb_cli_opt(opts, "format")->str;
    pb_cmp_format fmt = PB_CMP_MD;
    if (!fs || strcmp(fs, "md") == 0) fmt = PB_CMP_MD;
    else if (strcmp(fs, "tex") == 0) fmt = PB_CMP_TEX;
    else if (strcmp(fs, "csv") == 0) fmt = PB_CMP_CSV;
    else {
        pb_err_set(&err, "--format must be md, tex or csv, not '%s'", fs);
        code = pb_cli_fail(&err);
        goto done;
    }
    if (pb_cmp_load(&c, dirs, n_dirs, &err) != 0 || pb_cmp_print(c, stdout, fmt, pb_cli_opt(opts, "baseline")->str, &err) != 0) {
        code = pb_cli_fail(&err);
        goto done;
    }
    code = PB_EXIT_OK;
done:
    pb_cmp_free(c);
    free(rest);
    free(dirs);
    return code;
}

/* cmd_run.c — `prunebench run EXP.yaml`: a sweep from an experiment file, one HDF5 file per
 * run, resumable, shardable. */
#include "cli.h"
#include "runner.h"

#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_run = {
    .name = "run", .n_positional = 1, .run = run,
    .usage = "EXP.yaml [--out DIR] [--shard K/N] [--only RUN_ID|LABEL] [--dry-run] [--data-dir DIR] [--threads N]",
    .summary = "run an experiment file: prune x evaluate every point of its sweep into HDF5 results",
    .details =
        "The experiment file (see experiments/*.yaml and core/exp/exp.h) names models, calibration, methods,\n"
        "the sweep axes (cartesian product, plus zip groups that move together) and the evaluation. Each run\n"
        "is written to OUT/<experiment>/<run_id>.h5 (default OUT: results) under a temporary name and renamed\n"
        "when complete; rerunning the file skips finished runs, so an interrupted sweep continues where it\n"
        "stopped. A failing run is recorded as failed with its error and the sweep goes on. --shard K/N runs\n"
        "every N-th run starting at the K-th (N machines share one experiment; `prunebench index` merges).\n"
        "--dry-run lists the runs, their state and what each computes. At the end OUT/<experiment>/index.h5\n"
        "is rebuilt from the run files.",
};

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"out", PB_OPT_STR, "DIR", "results root (default: results)", 0, 0, 0, 0},
                     {"shard", PB_OPT_STR, "K/N", "run shard K of N", 0, 0, 0, 0},
                     {"only", PB_OPT_STR, "ID", "run only this run_id or label", 0, 0, 0, 0},
                     {"dry-run", PB_OPT_FLAG, NULL, "list the runs and stop", 0, 0, 0, 0},
                     {"data-dir", PB_OPT_STR, "DIR", "data folder (default: $PRUNEBENCH_DATA, ../shared/data, ./data)", 0,
                      0, 0, 0},
                     {"threads", PB_OPT_INT, "N", "CPU threads (default: all cores)", 0, 0, 0, 0},
                     {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_run, argc, argv, opts, pos, &code)) return code;
    pb_run_opts ro = {.out_root = pb_cli_opt(opts, "out")->str, .data_dir = pb_cli_opt(opts, "data-dir")->str,
                      .shard_k = 1, .shard_n = 1, .only = pb_cli_opt(opts, "only")->str, .log = stderr};
    pb_opt *sh = pb_cli_opt(opts, "shard"), *th = pb_cli_opt(opts, "threads");
    if (sh->set) {
        char *end;
        long k = strtol(sh->str, &end, 10), n = 0;
        if (*end == '/') n = strtol(end + 1, &end, 10);
        if (*end || k < 1 || n < 1 || k > n || n > 100000)
            return pb_cli_usage_error("run", "--shard '%s': expected K/N with 1 <= K <= N", sh->str);
        ro.shard_k = (int)k;
        ro.shard_n = (int)n;
    }
    if (th->set) {
        if (th->ival < 1 || th->ival > 1024) return pb_cli_usage_error("run", "--threads must be between 1 and 1024");
        pb_set_threads((int)th->ival);
    }
    pb_err err = {0};
    pb_exp *e = NULL;
    if (pb_exp_load(pos[0], &e, &err) != 0) return pb_cli_fail(&err);
    if (pb_cli_opt(opts, "dry-run")->set) {
        pb_exp_print_plan(e, &ro, stdout);
        pb_exp_free(e);
        return PB_EXIT_OK;
    }
    pb_run_summary s;
    int rc = pb_exp_execute(e, &ro, &s, &err);
    if (rc == 0) {
        char *dir = pb_exp_dir(e, &ro);
        printf("experiment %s: %d runs selected, %d already finished, %d done, %d failed; index of %d runs in %s/index.h5\n",
               e->name, s.selected, s.skipped, s.done, s.failed, s.indexed, dir ? dir : "?");
        free(dir);
    }
    pb_exp_free(e);
    return rc == 0 ? PB_EXIT_OK : pb_cli_fail(&err);
}

/* cmd_index.c — `prunebench index DIR`: rebuild an experiment's index.h5 from its run files
 * (after shards ran on several machines and their files were copied together). */
#include "cli.h"
#include "results.h"

static int run(int argc, char **argv);

const pb_cmd pb_cmd_index = {
    .name = "index", .n_positional = 1, .run = run, .usage = "DIR",
    .summary = "rebuild DIR/index.h5 (one summary row per run) from the run files in DIR",
    .details = "Run files are DIR/<run_id>.h5; temporary files of interrupted runs are ignored. The index is\n"
               "written under a temporary name and renamed, so readers never see half of it.",
};

static int run(int argc, char **argv) {
    pb_opt opts[] = {{0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_index, argc, argv, opts, pos, &code)) return code;
    pb_err err = {0};
    int n = 0;
    if (pb_results_index(pos[0], &n, &err) != 0) return pb_cli_fail(&err);
    printf("%s/index.h5: %d runs\n", pos[0], n);
    return PB_EXIT_OK;
}

/* cmd_plot.c — `prunebench plot DIR... --kind K --out FILE`: figures from experiment folders,
 * drawn by plots/plot.py (matplotlib reading the HDF5 results) in a child Python process.
 *
 * Where plot.py is: $PRUNEBENCH_PLOTS, the source tree compiled in as PB_SRC_DIR, next to
 * the executable (<exe>/../plots for build/prunebench, <exe>/../../plots one level deeper),
 * then ./plots. Which Python: $PRUNEBENCH_PYTHON, PB_PYTHON compiled in, /usr/bin/python3
 * (where the setup installs Debian's matplotlib and h5py), then python3 on PATH. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int run(int argc, char **argv);

const pb_cmd pb_cmd_plot = {
    .name = "plot", .n_positional = 0, .run = run,
    .usage = "DIR... --kind ppl-vs-ratio|acc-vs-ratio|speed-vs-quality|importance --out FILE.png|svg [--dataset D]",
    .summary = "width-vs-depth figures from experiment folders (matplotlib, via plots/plot.py)",
    .details = "ppl-vs-ratio: perplexity on --dataset (default wikitext2; log scale) against the fraction of\n"
               "  parameters removed, one line per method (depth methods solid, width methods dashed).\n"
               "acc-vs-ratio: mean zero-shot accuracy (x100) against the fraction removed.\n"
               "speed-vs-quality: perplexity against throughput (or latency when no throughput was measured).\n"
               "importance: the per-layer importance scores stored in the run files (normalised per run).\n"
               "The format follows the extension of --out (.png, .svg or .pdf). Needs python3 with\n"
               "matplotlib and h5py ($PRUNEBENCH_PYTHON picks the interpreter, $PRUNEBENCH_PLOTS the\n"
               "folder holding plot.py).",
};

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* plot.py's full path into out; false when none of the places has it. */
static bool find_script(char *out, size_t cap) {
    const char *env = getenv("PRUNEBENCH_PLOTS");
    if (env && env[0]) {
        snprintf(out, cap, "%s/plot.py", env);
        return is_file(out);   /* an explicit setting is not second-guessed */
    }
#ifdef PB_SRC_DIR
    snprintf(out, cap, "%s/plots/plot.py", PB_SRC_DIR);
    if (is_file(out)) return true;
#endif
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        static const char *const rel[] = {"../plots", "../../plots"};
        for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
            snprintf(out, cap, "%s/%s/plot.py", exe, rel[i]);
            if (is_file(out)) return true;
        }
    }
    snprintf(out, cap, "plots/plot.py");
    return is_file(out);
}

static const char *find_python(void) {
    const char *env = getenv("PRUNEBENCH_PYTHON");
    if (env && env[0]) return env;
#ifdef PB_PYTHON
    if (access(PB_PYTHON, X_OK) == 0) return PB_PYTHON;
#endif
    if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return "python3";
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        {"kind", PB_OPT_STR, "K", "ppl-vs-ratio | acc-vs-ratio | speed-vs-quality | importance", 0, 0, 0, 0},
        {"out", PB_OPT_STR, "FILE", "output image (.png, .svg or .pdf)", 0, 0, 0, 0},
        {"dataset", PB_OPT_STR, "D", "perplexity dataset for ppl-vs-ratio and speed-vs-quality (default wikitext2)",
         0, 0, 0, 0},
        {"title", PB_OPT_STR, "T", "figure title (default: what is plotted and the experiments)", 0, 0, 0, 0},
        {0},
    };
    /* DIR... is any number of folders: take them out before the fixed-arity parser */
    char **rest = calloc((size_t)argc + 1, sizeof *rest), **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    char **child = calloc((size_t)argc + 16, sizeof *child);
    pb_err err = {0};
    int code = PB_EXIT_ERROR, n_rest = 0, n_dirs = 0;
    if (!rest || !dirs || !child) {
        pb_err_set(&err, "out of memory");
        code = pb_cli_fail(&err);
        goto done;
    }
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            rest[n_rest++] = argv[i];
            if (!strchr(argv[i], '=') && strcmp(argv[i], "--help") != 0 && i + 1 < argc) rest[n_rest++] = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0) {
            rest[n_rest++] = argv[i];
        } else {
            dirs[n_dirs++] = argv[i];
        }
    }
    if (pb_cli_parse(&pb_cmd_plot, n_rest, rest, opts, NULL, &code)) goto done;
    const char *kind = pb_cli_opt(opts, "kind")->str, *out = pb_cli_opt(opts, "out")->str;
    if (n_dirs == 0 || !kind || !out) {
        code = pb_cli_usage_error("plot", "expected %s", pb_cmd_plot.usage);
        goto done;
    }
    static const char *const kinds[] = {"ppl-vs-ratio", "acc-vs-ratio", "speed-vs-quality", "importance"};
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) known |= strcmp(kind, kinds[i]) == 0;
    if (!known) {
        pb_err_set(&err, "--kind must be ppl-vs-ratio, acc-vs-ratio, speed-vs-quality or importance, not '%s'", kind);
        code = pb_cli_fail(&err);
        goto done;
    }
    char script[PATH_MAX + 32];
    if (!find_script(script, sizeof script)) {
        pb_err_set(&err, "cannot find plots/plot.py (set PRUNEBENCH_PLOTS to the folder holding it)");
        code = pb_cli_fail(&err);
        goto done;
    }
    const char *py = find_python();
    int k = 0;
    child[k++] = (char *)py;
    child[k++] = script;
    for (int i = 0; i < n_dirs; i++) child[k++] = dirs[i];
    child[k++] = "--kind", child[k++] = (char *)kind;
    child[k++] = "--out", child[k++] = (char *)out;
    const char *ds = pb_cli_opt(opts, "dataset")->str, *title = pb_cli_opt(opts, "title")->str;
    if (ds) child[k++] = "--dataset", child[k++] = (char *)ds;
    if (title) child[k++] = "--title", child[k++] = (char *)title;
    child[k++] = "--prog", child[k++] = "prunebench";   /* its errors read "prunebench: error: ..." */
    child[k] = NULL;
    fflush(stdout);
    pid_t pid;
    int rc = posix_spawnp(&pid, py, NULL, NULL, child, environ);
    if (rc != 0) {
        pb_err_set(&err, "cannot run %s: %s (set PRUNEBENCH_PYTHON to a python3 with matplotlib and h5py)", py, strerror(rc));
        code = pb_cli_fail(&err);
        goto done;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            pb_err_set(&err, "waiting for %s: %s", py, strerror(errno));
            code = pb_cli_fail(&err);
            goto done;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) code = PB_EXIT_OK;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 2) code = PB_EXIT_USAGE;   /* plot.py printed why */
    else if (WIFEXITED(status)) code = PB_EXIT_ERROR;                                /* plot.py printed why */
    else {
        pb_err_set(&err, "%s %s was killed by signal %d", py, script, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        code = pb_cli_fail(&err);
    }
done:
    free(rest);
    free(dirs);
    free(child);
    return code;
}

/* main.c — the prunebench command: global options, then dispatch to a subcommand. */
#include "cli.h"
#include "cli_commands.h" /* generated: one entry per core/cli/cmd_<name>.c */

#include <string.h>

static const pb_cmd *const commands[] = {PB_CLI_COMMANDS};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void print_usage(FILE *f) {
    fprintf(f, "usage: prunebench [-v|-q] COMMAND [ARGS...]\n\n"
               "Structured pruning harness for LLaMA-family models.\n"
               "MODEL is a Hugging Face folder, a .gguf file, or a llama2.c .bin (with --tokenizer).\n\n"
               "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nglobal options:\n  -v, --verbose   more log output (repeat for debug)\n"
               "  -q, --quiet     errors only\n  --version       print the version\n\n"
               "'prunebench COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) pb_log_verbosity++;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) pb_log_verbosity = PB_LOG_ERROR;
        else if (!strcmp(a, "--version")) { printf("prunebench %s (%s)\n", PB_VERSION, PB_GIT_REV); return 0; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { print_usage(stdout); return 0; }
        else { fprintf(stderr, "prunebench: usage error: unknown global option '%s'\n", a); return PB_EXIT_USAGE; }
    }
    if (i >= argc) { print_usage(stderr); return PB_EXIT_USAGE; }
    const char *name = argv[i];
    if (!strcmp(name, "help")) {
        if (i + 1 < argc) {
            char *sub[] = {argv[i + 1], "--help", NULL};
            for (int c = 0; c < N_COMMANDS; c++)
                if (!strcmp(commands[c]->name, argv[i + 1])) return commands[c]->run(2, sub);
        }
        print_usage(stdout);
        return 0;
    }
    for (int c = 0; c < N_COMMANDS; c++)
        if (!strcmp(commands[c]->name, name)) return commands[c]->run(argc - i, argv + i);
    fprintf(stderr, "prunebench: usage error: unknown command '%s' (see 'prunebench --help')\n", name);
    return PB_EXIT_USAGE;
}

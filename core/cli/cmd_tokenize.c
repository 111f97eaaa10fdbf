/* cmd_tokenize.c — `prunebench tokenize MODEL --text FILE [--bos]`: the ids of a text file. */
#include "cli.h"

#include <stdlib.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_tokenize = {
    .name = "tokenize", .usage = "MODEL --text FILE [--bos]", .n_positional = 1, .run = run,
    .summary = "print the token ids of a text file, space-separated on one line",
    .details = "The file is encoded byte for byte, final newline included, as one string.",
};

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"text", PB_OPT_STR, "FILE", "UTF-8 text to encode (required)", 0, 0, 0, 0},
                     {"bos", PB_OPT_FLAG, NULL, "put the BOS token first", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_tokenize, argc, argv, opts, pos, &code)) return code;
    const char *text_path = pb_cli_opt(opts, "text")->str;
    if (!text_path) return pb_cli_usage_error("tokenize", "--text FILE is required");

    pb_err err = {0};
    char *text = NULL;
    size_t len = 0;
    if (pb_file_read_all(text_path, &text, &len, &err)) return pb_cli_fail(&err);
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    if (pb_cli_load(pos[0], opts, true, &m, &tok, &err) ||
        pb_tok_encode(tok, text, len, pb_cli_opt(opts, "bos")->set, &ids, &n, &err)) {
        rc = pb_cli_fail(&err);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    free(text);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}

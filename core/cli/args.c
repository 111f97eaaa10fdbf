/* args.c — a small, strict long-option parser shared by every subcommand.
 * Strict because a mistyped option silently ignored would make an experiment lie. */
#include "cli.h"
#include "ops.h"
#include "lora.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

pb_opt *pb_cli_opt(pb_opt *opts, const char *name) {
    for (pb_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    PB_ASSERT(!"unknown option name in pb_cli_opt");
    return NULL;
}

int pb_cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "prunebench %s: usage error: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'prunebench %s --help')\n", cmd);
    return PB_EXIT_USAGE;
}

static void print_help(const pb_cmd *cmd, const pb_opt *opts) {
    printf("usage: prunebench %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->details) printf("\n%s\n", cmd->details);
    printf("\noptions:\n");
    for (const pb_opt *o = opts; o->name; o++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-22s %s\n", lhs, o->help);
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

static int set_value(const pb_cmd *cmd, pb_opt *o, const char *v) {
    char *end;
    o->set = true;
    o->str = v;
    errno = 0;
    if (o->kind == PB_OPT_INT) {
        o->ival = strtol(v, &end, 10);
        if (errno || end == v || *end) return pb_cli_usage_error(cmd->name, "--%s expects an integer, got '%s'", o->name, v);
    } else if (o->kind == PB_OPT_FLOAT) {
        o->fval = strtod(v, &end);
        if (errno || end == v || *end) return pb_cli_usage_error(cmd->name, "--%s expects a number, got '%s'", o->name, v);
    }
    return 0;
}

int pb_cli_parse(const pb_cmd *cmd, int argc, char **argv, pb_opt *opts, const char **pos, int *exit_code) {
    int n_pos = 0;
    *exit_code = PB_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(cmd, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (n_pos >= cmd->n_positional) {
                *exit_code = pb_cli_usage_error(cmd->name, "unexpected argument '%s'", a);
                return 1;
            }
            pos[n_pos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        pb_opt *o = NULL;
        for (pb_opt *p = opts; p->name; p++)
            if (strlen(p->name) == nlen && strncmp(p->name, name, nlen) == 0) o = p;
        if (!o) {
            *exit_code = pb_cli_usage_error(cmd->name, "unknown option '%.*s'", (int)(nlen + 2), a);
            return 1;
        }
        if (o->kind == PB_OPT_FLAG) {
            if (eq) { *exit_code = pb_cli_usage_error(cmd->name, "--%s takes no value", o->name); return 1; }
            o->set = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) { *exit_code = pb_cli_usage_error(cmd->name, "--%s needs a value", o->name); return 1; }
        if (set_value(cmd, o, v) != 0) { *exit_code = PB_EXIT_USAGE; return 1; }
    }
    if (n_pos != cmd->n_positional) {
        *exit_code = pb_cli_usage_error(cmd->name, "expected %s", cmd->usage);
        return 1;
    }
    return 0;
}

int pb_cli_fail(const pb_err *err) {
    fprintf(stderr, "prunebench: error: %s\n", err->msg[0] ? err->msg : "unknown error");
    if (pb_log_verbosity >= PB_LOG_DEBUG && err->src_file)
        fprintf(stderr, "prunebench: debug: raised at %s:%d\n", err->src_file, err->src_line);
    return PB_EXIT_ERROR;
}

static pb_opt *find_opt(pb_opt *opts, const char *name) {
    for (pb_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

/* --device / --dtype, where the command has them: *m is replaced by its backend copy. */
static int to_device(pb_opt *opts, pb_model **m, pb_err *err) {
    pb_opt *dv = find_opt(opts, "device"), *dt = find_opt(opts, "dtype");
    if (!dv || (!dv->set && !(dt && dt->set))) return 0;
    const pb_ops *ops = pb_ops_get(dv->set ? dv->str : "cpu", dt && dt->set ? dt->str : NULL, err);
    if (!ops) return -1;
    if (ops == pb_ops_cpu()) return 0;   /* the host model is the CPU's */
    pb_model *dm;
    PB_TRY(pb_model_to_backend(*m, ops, &dm, err));
    pb_model_free(*m);
    *m = dm;
    return 0;
}

int pb_cli_load(const char *path, pb_opt *opts, bool need_tok, pb_model **m, pb_tokenizer **tok, pb_err *err) {
    pb_opt *th = pb_cli_opt(opts, "threads");
    if (th->set) {
        if (th->ival < 1 || th->ival > 1024) return pb_err_set(err, "--threads must be between 1 and 1024, got %ld", th->ival);
        pb_set_threads((int)th->ival);
    }
    pb_load_opts lo = {.tokenizer_path = pb_cli_opt(opts, "tokenizer")->str};
    if (tok) *tok = NULL;
    PB_TRY(pb_model_load(path, &lo, m, tok, err));
    if (need_tok && tok && !*tok) {
        pb_model_free(*m);
        *m = NULL;
        return pb_err_set(err, "%s: model carries no tokenizer; give one with --tokenizer FILE", path);
    }
    const char *ad = pb_cli_opt(opts, "lora")->str;
    if (ad) {
        pb_lora *l;
        if (pb_lora_load(&l, *m, ad, false, err) != 0) {
            pb_model_free(*m);
            *m = NULL;
            if (tok) {
                pb_tok_free(*tok);
                *tok = NULL;
            }
            return -1;
        }
        (*m)->lora = l;
        (*m)->owns_lora = true;
    }
    if (to_device(opts, m, err) != 0) {
        pb_model_free(*m);
        *m = NULL;
        if (tok) {
            pb_tok_free(*tok);
            *tok = NULL;
        }
        return -1;
    }
    return 0;
}

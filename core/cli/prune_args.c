/* prune_args.c — the options `prune` and `importance` share: method, criterion, granularity,
 * calibration, read into pb_prune_opts (see cli.h, PB_CLI_PRUNE_OPTS). */
#include "cli.h"
#include "prune.h"

#include <stdlib.h>
#include <string.h>

static const struct { const char *criterion, *method; } by_criterion[] = {
    {"magnitude", "depth"},    {"ppl", "depth"},          {"l1", "magnitude"},         {"l2", "magnitude"},
    {"param_first", "llm-pruner"}, {"param_second", "llm-pruner"}, {"param_mix", "llm-pruner"},
    {"vectorize", "llm-pruner"}, {"wanda", "wanda-sp"}, {"wifv", "flap"}, {"ifv", "flap"}, {"wifn", "flap"},
    {"random", "random"}};

static int parse_granularity(const char *g, pb_prune_opts *o, pb_err *err) {
    static const char *const names[] = {"block", "attn", "mlp", "head", "channel"};
    for (int i = 0; i < 5; i++)
        if (strcmp(g, names[i]) == 0) {
            o->granularity = (pb_struct_kind)i;
            return 0;
        }
    if (strcmp(g, "module") == 0) {
        o->granularity = PB_S_ATTN;
        o->module_joint = true;
        return 0;
    }
    return pb_err_set(err, "unknown --granularity '%s' (block, attn, mlp, module, head, channel)", g);
}

const char *pb_cli_method_for(const char *criterion, pb_struct_kind g) {
    if (!criterion) return NULL;
    bool depth = g == PB_S_BLOCK || g == PB_S_ATTN || g == PB_S_MLP;
    if (strcmp(criterion, "taylor") == 0) return depth ? "depth" : "llm-pruner";
    if (strcmp(criterion, "magnitude") == 0 && !depth) return "magnitude";
    for (size_t i = 0; i < sizeof by_criterion / sizeof by_criterion[0]; i++)
        if (strcmp(criterion, by_criterion[i].criterion) == 0) return by_criterion[i].method;
    return NULL;
}

int pb_cli_prune_opts(pb_opt *opts, void *prune_opts, pb_err *err) {
    pb_prune_opts *o = prune_opts;
    pb_opt *x;
    o->criterion = pb_cli_opt(opts, "criterion")->str;
    o->method = pb_cli_opt(opts, "method")->str;
    if ((x = pb_cli_opt(opts, "granularity"))->set) PB_TRY(parse_granularity(x->str, o, err));
    if ((x = pb_cli_opt(opts, "ratio"))->set) {
        if (!(x->fval >= 0.0 && x->fval < 1.0)) return pb_err_set(err, "--ratio %g is outside [0, 1)", x->fval);
        o->ratio = x->fval;
    }
    if ((x = pb_cli_opt(opts, "num-blocks"))->set) {
        if (x->ival < 0) return pb_err_set(err, "--num-blocks must not be negative");
        o->count = (int)x->ival;
    }
    pb_opt *gr = pb_cli_opt(opts, "group-ratio"), *p = pb_cli_opt(opts, "p");
    if (gr->set && p->set) return pb_err_set(err, "--group-ratio and --p are the same setting for different methods; give one");
    if ((x = gr->set ? gr : p)->set) {
        if (!(x->fval >= 0.0 && x->fval < 1.0)) return pb_err_set(err, "--%s %g is outside [0, 1)", x->name, x->fval);
        o->native = x->fval;
    }
    if ((x = pb_cli_opt(opts, "protect-first"))->set) o->protect_first = (int)x->ival;
    if ((x = pb_cli_opt(opts, "protect-last"))->set) o->protect_last = (int)x->ival;
    o->iterative = pb_cli_opt(opts, "iterative")->set;
    if ((x = pb_cli_opt(opts, "layers"))->set) {
        char *end;
        long a = strtol(x->str, &end, 10), b;
        if (end == x->str || *end != ':') return pb_err_set(err, "--layers '%s': expected START:END (half-open)", x->str);
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        if (end == q || *end) return pb_err_set(err, "--layers '%s': expected START:END (half-open)", x->str);
        if (a < 0 || b < 0 || a > 1000000 || b > 1000000) return pb_err_set(err, "--layers '%s' is out of range", x->str);
        o->layer_start = (int)a;
        o->layer_end = (int)b;
    }
    o->aggregation = pb_cli_opt(opts, "aggregation")->str;
    o->structure = pb_cli_opt(opts, "structure")->str;
    o->metric = pb_cli_opt(opts, "metric")->str;
    o->no_bias_compensation = pb_cli_opt(opts, "no-bias-compensation")->set;
    if ((x = pb_cli_opt(opts, "seed"))->set) o->seed = (uint64_t)x->ival;
    if (!o->method) {
        o->method = pb_cli_method_for(o->criterion, o->granularity);
        /* a criterion that names a method's own metric goes where that method reads it */
        if (o->method && strcmp(o->method, "flap") == 0) o->metric = o->criterion, o->criterion = NULL;
        else if (o->method && (strcmp(o->method, "wanda-sp") == 0 || strcmp(o->method, "random") == 0 ||
                               (strcmp(o->method, "magnitude") == 0 && strcmp(o->criterion, "magnitude") == 0)))
            o->criterion = NULL;
    }
    if (!o->method)
        return pb_err_set(err, o->criterion ? "unknown --criterion '%s' (magnitude, taylor, ppl at block/attn/mlp/module; "
                                              "l1, l2, taylor, param_first, param_second, param_mix, vectorize, wanda, "
                                              "wifv, ifv, wifn, random at head/channel)"
                                            : "give --method (or a --criterion that implies one)%s",
                          o->criterion ? o->criterion : "");
    return 0;
}

int pb_cli_calib(pb_opt *opts, const pb_tokenizer *tok, pb_calib *c, bool *loaded, pb_err *err) {
    *loaded = false;
    const char *name = pb_cli_opt(opts, "calib")->str;
    if (!name) return 0;
    pb_opt *x;
    int n = 10, T = 128;
    pb_calib_sampling s = PB_CALIB_RANDOM;
    if ((x = pb_cli_opt(opts, "calib-samples"))->set) {
        if (x->ival < 1 || x->ival > 1000000) return pb_err_set(err, "--calib-samples must be between 1 and 10^6");
        n = (int)x->ival;
    }
    if ((x = pb_cli_opt(opts, "calib-seq-len"))->set) {
        if (x->ival < 2 || x->ival > 1 << 20) return pb_err_set(err, "--calib-seq-len must be at least 2");
        T = (int)x->ival;
    }
    if ((x = pb_cli_opt(opts, "calib-sampling"))->set) {
        if (strcmp(x->str, "contiguous") == 0) s = PB_CALIB_CONTIGUOUS;
        else if (strcmp(x->str, "random") != 0)
            return pb_err_set(err, "unknown --calib-sampling '%s' (random or contiguous)", x->str);
    }
    pb_opt *seed = pb_cli_opt(opts, "seed");
    PB_TRY(pb_calib_load(c, name, pb_cli_opt(opts, "calib-split")->str, pb_cli_opt(opts, "data-dir")->str, tok, n, T, s,
                         seed->set ? (uint64_t)seed->ival : 0, err));
    *loaded = true;
    return 0;
}

/* runner_importance.c — a pruned run's importance scores into its results file (see
 * runner_internal.h; layout in results.h). The scores are those of the unpruned model, the
 * ones the method ranked by (for iterative depth pruning: its first ranking), so every
 * ratio of one criterion records the same table, and `prunebench plot --kind importance`
 * draws it per layer. */
#include "runner_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The scores of base at kind through po's method and memo, into a (layers, cols) table
 * padded with NaN (*cols: the widest layer, at least 1). */
static int table(const pb_model *base, const pb_prune_opts *po, pb_struct_kind kind, double **out, int *cols,
                 pb_err *err) {
    pb_prune_opts o = *po;
    o.granularity = kind;
    o.module_joint = false;
    pb_scores s;
    PB_TRY(pb_importance(base, &o, &s, err));
    int L = s.n_layers, C = 1;
    for (int l = 0; l < L; l++)
        if (s.count[l] > C) C = s.count[l];
    double *t = malloc(sizeof(double) * (size_t)(L ? L : 1) * (size_t)C);
    if (!t) {
        pb_scores_free(&s);
        return pb_err_set(err, "importance: out of memory");
    }
    for (int l = 0; l < L; l++)
        for (int j = 0; j < C; j++) t[(size_t)l * C + j] = j < s.count[l] ? s.score[l][j] : NAN;
    pb_scores_free(&s);
    *out = t;
    *cols = C;
    return 0;
}

int pb_run_record_importance(pb_result *res, const pb_model *base, const pb_prune_opts *po, pb_err *err) {
    int L = base->cfg.n_layers, rc;
    bool depth = po->method && !strcmp(po->method, "depth");
    double *a = NULL, *b = NULL;
    int ca = 1, cb = 1;
    if (depth && po->module_joint) {
        /* attention and MLP modules ranked together: one column each */
        rc = table(base, po, PB_S_ATTN, &a, &ca, err);
        if (rc == 0) rc = table(base, po, PB_S_MLP, &b, &cb, err);
        double *t = rc == 0 ? malloc(sizeof(double) * 2 * (size_t)(L ? L : 1)) : NULL;
        if (rc == 0 && !t) rc = pb_err_set(err, "importance: out of memory");
        for (int l = 0; rc == 0 && l < L; l++) t[2 * l] = a[l], t[2 * l + 1] = b[l];
        if (rc == 0) rc = pb_result_importance(res, "scores", "module", t, L, 2, err);
        free(t);
    } else if (depth) {
        static const char *const names[] = {"block", "attn", "mlp"};
        pb_struct_kind k = po->granularity <= PB_S_MLP ? po->granularity : PB_S_BLOCK;
        rc = table(base, po, k, &a, &ca, err);
        if (rc == 0) rc = pb_result_importance(res, "scores", names[k], a, L, 1, err);
    } else {
        rc = table(base, po, PB_S_HEAD, &a, &ca, err);
        if (rc == 0) rc = table(base, po, PB_S_CHANNEL, &b, &cb, err);
        /* both computed before either is written: a failure leaves no /importance at all. (A
         * model with one KV head per layer gets a (layers,) vector: read per layer the same.) */
        if (rc == 0) rc = pb_result_importance(res, "scores", "head", a, L, ca, err);
        if (rc == 0) rc = pb_result_importance(res, "channels", "channel", b, L, cb, err);
    }
    free(a);
    free(b);
    return rc;
}

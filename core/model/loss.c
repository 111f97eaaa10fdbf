/* loss.c — next-token negative log-likelihood from logits.
 *
 * log-softmax runs in double per row: a vocabulary of 32k-128k terms summed in fp32 loses
 * ~1e-4 relative, which would show in perplexities quoted to two decimals. Rows are
 * independent, so they run in parallel; the final sum is over per-row doubles in row order,
 * so the result does not depend on the thread count. */
#include "model.h"

#include <math.h>

int pb_logits_nll(const float *logits, const int32_t *targets, int64_t n, int vocab, double *nll, double *sum,
                  pb_err *err) {
    int64_t bad = -1;
#pragma omp parallel for schedule(static) if (n * vocab >= 65536)
    for (int64_t i = 0; i < n; i++) {
        const float *r = logits + i * (int64_t)vocab;
        float mx = r[0];
        for (int v = 1; v < vocab; v++) mx = r[v] > mx ? r[v] : mx;
        double z = 0;
        for (int v = 0; v < vocab; v++) z += exp((double)r[v] - mx);
        double x = (double)mx + log(z) - (double)r[targets[i]];
        nll[i] = x;
        if (!isfinite(x)) {
#pragma omp critical
            if (bad < 0 || i < bad) bad = i;
        }
    }
    if (bad >= 0) return pb_err_set(err, "non-finite log-likelihood at row %lld (logits contain NaN or Inf)", (long long)bad);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += nll[i];
    if (sum) *sum = s;
    return 0;
}

/* rope.c — RoPE inverse frequencies with HF's rope_scaling variants ("linear", "llama3").
 *
 * Computed in double: the float64 reference tests compare against exact frequencies, and
 * HF's own fp32 computation differs from them only by rounding. */
#include "rope.h"

#include <math.h>

int pb_rope_inv_freq(const pb_config *cfg, int head_dim, float *inv_freq, pb_err *err) {
    if (head_dim <= 0 || (head_dim & 1)) return pb_err_set(err, "RoPE: invalid head_dim %d (must be even)", head_dim);
    if (!(cfg->rope_theta > 0)) return pb_err_set(err, "RoPE: invalid rope_theta %g", (double)cfg->rope_theta);
    const pb_rope_scaling *rs = &cfg->rope_scaling;
    double factor = rs->factor;
    if ((rs->type == PB_ROPE_LINEAR || rs->type == PB_ROPE_LLAMA3) && !(factor > 0))
        return pb_err_set(err, "RoPE: invalid rope_scaling factor %g", factor);
    double lo = rs->low_freq_factor, hi = rs->high_freq_factor, old_ctx = rs->original_max_position;
    if (rs->type == PB_ROPE_LLAMA3 && (!(lo > 0) || !(hi > 0) || lo == hi || !(old_ctx > 0)))
        return pb_err_set(err, "RoPE: invalid llama3 rope_scaling (low_freq_factor %g, high_freq_factor %g, "
                          "original_max_position_embeddings %g)", lo, hi, old_ctx);
    int half = head_dim / 2;
    for (int j = 0; j < half; j++) {
        double f = 1.0 / pow((double)cfg->rope_theta, (double)(2 * j) / head_dim);
        if (rs->type == PB_ROPE_LINEAR) {
            f /= factor;
        } else if (rs->type == PB_ROPE_LLAMA3) {
            /* Long wavelengths (low frequencies) are interpolated by `factor`, short ones are
             * kept, and the band between is blended linearly in old_ctx/wavelen. */
            double wavelen = 2.0 * M_PI / f;
            double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
            if (wavelen > low_wavelen) {
                f /= factor;
            } else if (!(wavelen < high_wavelen)) {
                double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[j] = (float)f;
    }
    return 0;
}

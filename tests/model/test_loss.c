/* test_loss.c — pb_logits_nll against hand-computed values, and its NaN/Inf error path. */
#include "model.h"
#include "pb_test.h"

int main(void) {
    pb_err err = {0};
    /* row 0: uniform over 4 -> ln 4; row 1: probabilities (1/4, 3/4) padded with -inf-like
     * logits -> -ln(3/4); row 2: a shift of every logit by 1000 must not change the result
     * (max subtraction), -ln(e^2 / (e^0 + e^1 + e^2 + e^0)) */
    const float logits[3 * 4] = {0, 0, 0, 0,
                                 0, logf(3.0f), -1e30f, -1e30f,
                                 1000, 1001, 1002, 1000};
    const int32_t tgt[3] = {2, 1, 2};
    double nll[3], sum = 0;
    REQUIRE(pb_logits_nll(logits, tgt, 3, 4, nll, &sum, &err) == 0, "%s", err.msg);
    double want2 = -(2.0 - log(1.0 + exp(1.0) + exp(2.0) + 1.0));
    /* fp32 logits (logf(3) is rounded to 24 bits) and a double log-softmax: 1e-6 absolute covers
     * the input rounding with room; a wrong formula is off by > 1e-2 */
    CHECK_NEAR(nll[0], log(4.0), 1e-6);
    CHECK_NEAR(nll[1], log(4.0 / 3.0), 1e-6);
    CHECK_NEAR(nll[2], want2, 1e-6);
    CHECK_NEAR(sum, nll[0] + nll[1] + nll[2], 1e-12);

    /* a NaN in row 1 is reported with its row, and sum is not required */
    float bad[2 * 4] = {0, 0, 0, 0, 0, NAN, 0, 0};
    CHECK(pb_logits_nll(bad, tgt, 2, 4, nll, NULL, &err) != 0 && strstr(err.msg, "row 1"));
    bad[5] = INFINITY;
    CHECK(pb_logits_nll(bad, tgt, 2, 4, nll, NULL, &err) != 0 && strstr(err.msg, "row 1"));
    return pb_test_done("model_loss");
}

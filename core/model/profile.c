/* profile.c — the per-op timing table the model driver fills while profiling (ops.h). */
#include "ops.h"

pb_op_profile pb_profile;
const char *const pb_op_names[PB_OP_COUNT] = {"linear (GEMM)", "rmsnorm", "rope", "attention", "swiglu", "add",
                                              "embedding"};

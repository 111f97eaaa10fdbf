/* backend.c — choosing a backend by name (--device, --dtype, experiment files) and the
 * weight storage types they share. */
#include "ops.h"

#include <string.h>

const char *const pb_dtype_names[3] = {"f32", "f16", "bf16"};

size_t pb_dtype_size(pb_dtype t) { return t == PB_DT_F32 ? 4 : 2; }

const pb_ops *pb_ops_get(const char *device, const char *dtype, pb_err *err) {
    const char *dev = device ? device : "cpu";
    bool cuda = strcmp(dev, "cuda") == 0;
    if (!cuda && strcmp(dev, "cpu") != 0)
        return pb_err_set(err, "unknown device '%s' (cpu, cuda)", dev), NULL;
    pb_dtype t = cuda ? PB_DT_BF16 : PB_DT_F32;
    if (dtype) {
        int i = 0;
        while (i < 3 && strcmp(dtype, pb_dtype_names[i]) != 0) i++;
        if (i == 3) return pb_err_set(err, "unknown dtype '%s' (f32, f16, bf16)", dtype), NULL;
        t = (pb_dtype)i;
    }
    if (!cuda) {
        if (t != PB_DT_F32)
            return pb_err_set(err, "--dtype %s: the CPU backend computes in f32 (fp16/bf16 weights need --device cuda)",
                              pb_dtype_names[t]), NULL;
        return pb_ops_cpu();
    }
    return pb_ops_cuda(t, err);
}

/* cuda_stub.c — pb_ops_cuda when prunebench was built without the CUDA backend (no nvcc at
 * configure time, or -DPB_CUDA=OFF): --device cuda then fails with this one line. */
#include "ops.h"

#ifndef PB_HAVE_CUDA
const pb_ops *pb_ops_cuda(pb_dtype wtype, pb_err *err) {
    (void)wtype;
    pb_err_set(err, "--device cuda: this prunebench was built without the CUDA backend (CMake found no nvcc, or "
                    "was given -DPB_CUDA=OFF)");
    return NULL;
}
#else
typedef int pb_cuda_stub_unused;
#endif

// Makes the CUDA kernel file compile as plain C++ on the host: the qualifiers vanish and
// the launch-geometry variables exist (the __global__ wrappers are never called here).
#pragma once
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
struct snetx_host_dim3 { unsigned x, y, z; };
static snetx_host_dim3 blockIdx, threadIdx, blockDim, gridDim;

// Host build of snetx.cuend's per-neuron kernel code, called from test_host_build.py.
#include "host_shim.h"
#include "lif_kernels.cu"

namespace {
// grid > 0: run the __global__ kernel itself, block by block and thread by thread, with
// that many blocks of `block` threads (its grid-stride loop must cover every neuron);
// grid == 0: call the per-neuron function for each neuron.
int grid = 0, block = 1;

template <typename Body>
void each_thread(Body body) {
    gridDim.x = grid;
    blockDim.x = block;
    for (blockIdx.x = 0; blockIdx.x < (unsigned)grid; ++blockIdx.x)
        for (threadIdx.x = 0; threadIdx.x < (unsigned)block; ++threadIdx.x) body();
}

template <typename IO>
void fwd(const void* x, void* h, void* s, long long N, long long T, long long F, double decay,
         double v_th, double v_reset) {
    typedef typename snetx::state_of<IO>::type S;
    if (grid) {
        each_thread([&] {
            snetx::lif_forward<IO>((const IO*)x, (IO*)h, (IO*)s, N * F, T, F, (S)decay, (S)v_th,
                                   (S)v_reset);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::forward_neuron<IO>((const IO*)x, (IO*)h, (IO*)s, i, T, F, (S)decay, (S)v_th,
                                  (S)v_reset);
}

template <typename IO, int SG, bool D>
void bwd(const void* h, const void* gs, void* gx, long long N, long long T, long long F,
         double decay, double v_th, double v_reset, double alpha) {
    typedef typename snetx::state_of<IO>::type S;
    if (grid) {
        each_thread([&] {
            snetx::lif_backward<IO, SG, D>((const IO*)h, (const IO*)gs, (IO*)gx, N * F, T, F,
                                           (S)decay, (S)v_th, (S)v_reset, (S)alpha);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::backward_neuron<IO, SG, D>((const IO*)h, (const IO*)gs, (IO*)gx, i, T, F, (S)decay,
                                          (S)v_th, (S)v_reset, (S)alpha);
}

template <typename IO>
int bwd_sg(int sg, int detach, const void* h, const void* gs, void* gx, long long N, long long T,
           long long F, double decay, double v_th, double v_reset, double alpha) {
#define CASE(ID)                                                                  \
    case ID:                                                                      \
        if (detach) bwd<IO, ID, true>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);  \
        else bwd<IO, ID, false>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);        \
        return 0;
    switch (sg) { SNETX_SURROGATES(CASE) }
#undef CASE
    return 1;
}
}  // namespace

extern "C" void host_set_launch(int blocks, int threads) {
    grid = blocks;
    block = threads;
}

// io: 0 float, 1 double, 2 f16, 3 bf16
extern "C" int host_forward(int io, const void* x, void* h, void* s, long long N, long long T,
                            long long F, double decay, double v_th, double v_reset) {
    switch (io) {
        case 0: fwd<float>(x, h, s, N, T, F, decay, v_th, v_reset); return 0;
        case 1: fwd<double>(x, h, s, N, T, F, decay, v_th, v_reset); return 0;
        case 2: fwd<snetx::f16>(x, h, s, N, T, F, decay, v_th, v_reset); return 0;
        case 3: fwd<snetx::bf16>(x, h, s, N, T, F, decay, v_th, v_reset); return 0;
    }
    return 1;
}

extern "C" int host_backward(int io, int sg, int detach, const void* h, const void* gs, void* gx,
                             long long N, long long T, long long F, double decay, double v_th,
                             double v_reset, double alpha) {
    switch (io) {
        case 0: return bwd_sg<float>(sg, detach, h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);
        case 1: return bwd_sg<double>(sg, detach, h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);
        case 2: return bwd_sg<snetx::f16>(sg, detach, h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);
        case 3: return bwd_sg<snetx::bf16>(sg, detach, h, gs, gx, N, T, F, decay, v_th, v_reset, alpha);
    }
    return 1;
}

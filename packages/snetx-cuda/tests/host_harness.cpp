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

// Pointers as the kernels take them; state-sized ones (u0, u_last, k, g_*) may be null.
struct Ptrs {
    const void *x, *ckpt_in, *gs, *g_ulast, *u0, *k;
    void *ckpt, *s, *gx, *u_last, *g_u0, *g_k;
};

template <typename IO, bool SOFT>
void fwd(const Ptrs& p, long long N, long long T, long long F, double decay, double v_th,
         double v_reset) {
    typedef typename snetx::state_of<IO>::type S;
    const IO* x = (const IO*)p.x;
    if (grid) {
        each_thread([&] {
            snetx::lif_forward<IO, SOFT>(x, (S*)p.ckpt, (IO*)p.s, (const S*)p.u0, (S*)p.u_last,
                                         (const S*)p.k, N * F, T, F, (S)decay, (S)v_th,
                                         (S)v_reset);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::forward_neuron<IO, SOFT>(x, (S*)p.ckpt, (IO*)p.s, (const S*)p.u0, (S*)p.u_last,
                                        (const S*)p.k, i, T, F, (S)decay, (S)v_th, (S)v_reset);
}

template <typename IO, int SG, bool D, bool SOFT>
void bwd(const Ptrs& p, long long N, long long T, long long F, double decay, double v_th,
         double v_reset, double alpha) {
    typedef typename snetx::state_of<IO>::type S;
    const IO *x = (const IO*)p.x, *gs = (const IO*)p.gs;
    const S* ckpt = (const S*)p.ckpt_in;
    if (grid) {
        each_thread([&] {
            snetx::lif_backward<IO, SG, D, SOFT>(x, ckpt, gs, (IO*)p.gx, (const S*)p.g_ulast,
                                                 (const S*)p.u0, (const S*)p.k, (S*)p.g_u0,
                                                 (S*)p.g_k, N * F, T, F, (S)decay, (S)v_th,
                                                 (S)v_reset, (S)alpha);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::backward_neuron<IO, SG, D, SOFT>(x, ckpt, gs, (IO*)p.gx, (const S*)p.g_ulast,
                                                (const S*)p.u0, (const S*)p.k, (S*)p.g_u0,
                                                (S*)p.g_k, i, T, F, (S)decay, (S)v_th,
                                                (S)v_reset, (S)alpha);
}

template <typename IO>
int fwd_io(int soft, const Ptrs& p, long long N, long long T, long long F, double decay,
           double v_th, double v_reset) {
    soft ? fwd<IO, true>(p, N, T, F, decay, v_th, v_reset)
         : fwd<IO, false>(p, N, T, F, decay, v_th, v_reset);
    return 0;
}

template <typename IO>
int bwd_io(int sg, int detach, int soft, const Ptrs& p, long long N, long long T, long long F,
           double decay, double v_th, double v_reset, double alpha) {
#define CASE(ID)                                                                        \
    case ID:                                                                            \
        if (detach)                                                                     \
            soft ? bwd<IO, ID, true, true>(p, N, T, F, decay, v_th, v_reset, alpha)     \
                 : bwd<IO, ID, true, false>(p, N, T, F, decay, v_th, v_reset, alpha);   \
        else                                                                            \
            soft ? bwd<IO, ID, false, true>(p, N, T, F, decay, v_th, v_reset, alpha)    \
                 : bwd<IO, ID, false, false>(p, N, T, F, decay, v_th, v_reset, alpha);  \
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
extern "C" int host_forward(int io, int soft, const void* x, void* ckpt, void* s,
                            const void* u0, void* u_last, const void* k, long long N, long long T,
                            long long F, double decay, double v_th, double v_reset) {
    Ptrs p = {};
    p.x = x, p.ckpt = ckpt, p.s = s, p.u0 = u0, p.u_last = u_last, p.k = k;
    switch (io) {
        case 0: return fwd_io<float>(soft, p, N, T, F, decay, v_th, v_reset);
        case 1: return fwd_io<double>(soft, p, N, T, F, decay, v_th, v_reset);
        case 2: return fwd_io<snetx::f16>(soft, p, N, T, F, decay, v_th, v_reset);
        case 3: return fwd_io<snetx::bf16>(soft, p, N, T, F, decay, v_th, v_reset);
    }
    return 1;
}

extern "C" int host_backward(int io, int sg, int detach, int soft, const void* x,
                             const void* ckpt, const void* gs, void* gx, const void* g_ulast, const void* u0, const void* k,
                             void* g_u0, void* g_k, long long N, long long T, long long F,
                             double decay, double v_th, double v_reset, double alpha) {
    Ptrs p = {};
    p.x = x, p.ckpt_in = ckpt, p.gs = gs, p.gx = gx, p.g_ulast = g_ulast, p.u0 = u0, p.k = k;
    p.g_u0 = g_u0, p.g_k = g_k;
    switch (io) {
        case 0: return bwd_io<float>(sg, detach, soft, p, N, T, F, decay, v_th, v_reset, alpha);
        case 1: return bwd_io<double>(sg, detach, soft, p, N, T, F, decay, v_th, v_reset, alpha);
        case 2: return bwd_io<snetx::f16>(sg, detach, soft, p, N, T, F, decay, v_th, v_reset, alpha);
        case 3: return bwd_io<snetx::bf16>(sg, detach, soft, p, N, T, F, decay, v_th, v_reset, alpha);
    }
    return 1;
}

// Host build of snetx.cuend's CUDA driver (cuda_driver.cu), called from test_host_build.py:
// every neuron of SNETX_NEURONS, by its index there (0 lif, 1 cubalif, 2 alif, ...).
#include "host_shim.h"
#include "cuda_driver.cu"

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

// Pointers as the kernels take them; state-sized ones (st0, st_last, g_*) may be null.
struct Ptrs {
    const void *x, *ckpt_in, *gs, *g_stlast, *st0, *k;
    void *ckpt, *s, *gx, *st_last, *g_st0, *g_k;
};

template <template <typename> class NR, typename IO, bool SOFT>
void fwd(const Ptrs& p, long long N, long long T, long long F, const double* c) {
    typedef typename snetx::state_of<IO>::type S;
    const IO* x = (const IO*)p.x;
    const S cs[4] = {(S)c[0], (S)c[1], (S)c[2], (S)c[3]};
    if (grid) {
        each_thread([&] {
            snetx::forward<NR, IO, SOFT>(x, (S*)p.ckpt, (IO*)p.s, (const S*)p.st0,
                                         (S*)p.st_last, (const S*)p.k, N * F, T, F, cs[0],
                                         cs[1], cs[2], cs[3]);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::forward_neuron<NR, IO, SOFT>(x, (S*)p.ckpt, (IO*)p.s, (const S*)p.st0,
                                            (S*)p.st_last, (const S*)p.k, i, N * F, T, F, cs);
}

template <template <typename> class NR, typename IO, int SG, bool D, bool SOFT>
void bwd(const Ptrs& p, long long N, long long T, long long F, const double* c, double alpha) {
    typedef typename snetx::state_of<IO>::type S;
    const IO *x = (const IO*)p.x, *gs = (const IO*)p.gs;
    const S* ckpt = (const S*)p.ckpt_in;
    const S cs[4] = {(S)c[0], (S)c[1], (S)c[2], (S)c[3]};
    if (grid) {
        each_thread([&] {
            snetx::backward<NR, IO, SG, D, SOFT>(x, ckpt, gs, (IO*)p.gx, (const S*)p.g_stlast,
                                                 (const S*)p.st0, (const S*)p.k, (S*)p.g_st0,
                                                 (S*)p.g_k, N * F, T, F, cs[0], cs[1], cs[2],
                                                 cs[3], (S)alpha);
        });
        return;
    }
    for (long long i = 0; i < N * F; ++i)
        snetx::backward_neuron<NR, IO, SG, D, SOFT>(x, ckpt, gs, (IO*)p.gx, (const S*)p.g_stlast,
                                                    (const S*)p.st0, (const S*)p.k, (S*)p.g_st0,
                                                    (S*)p.g_k, i, N * F, T, F, cs, (S)alpha);
}

template <template <typename> class NR, typename IO>
int fwd_io(int soft, const Ptrs& p, long long N, long long T, long long F, const double* c) {
    soft ? fwd<NR, IO, true>(p, N, T, F, c) : fwd<NR, IO, false>(p, N, T, F, c);
    return 0;
}

template <template <typename> class NR, typename IO>
int bwd_io(int sg, int detach, int soft, const Ptrs& p, long long N, long long T, long long F,
           const double* c, double alpha) {
#define CASE(ID)                                                                 \
    case ID:                                                                     \
        if (detach)                                                              \
            soft ? bwd<NR, IO, ID, true, true>(p, N, T, F, c, alpha)             \
                 : bwd<NR, IO, ID, true, false>(p, N, T, F, c, alpha);           \
        else                                                                     \
            soft ? bwd<NR, IO, ID, false, true>(p, N, T, F, c, alpha)            \
                 : bwd<NR, IO, ID, false, false>(p, N, T, F, c, alpha);          \
        return 0;
    switch (sg) { SNETX_SURROGATES(CASE) }
#undef CASE
    return 1;
}

template <template <typename> class NR>
int fwd_neuron(int io, int soft, const Ptrs& p, long long N, long long T, long long F,
               const double* c) {
    switch (io) {
        case 0: return fwd_io<NR, float>(soft, p, N, T, F, c);
        case 1: return fwd_io<NR, double>(soft, p, N, T, F, c);
        case 2: return fwd_io<NR, snetx::f16>(soft, p, N, T, F, c);
        case 3: return fwd_io<NR, snetx::bf16>(soft, p, N, T, F, c);
    }
    return 1;
}

template <template <typename> class NR>
int bwd_neuron(int io, int sg, int detach, int soft, const Ptrs& p, long long N, long long T,
               long long F, const double* c, double alpha) {
    switch (io) {
        case 0: return bwd_io<NR, float>(sg, detach, soft, p, N, T, F, c, alpha);
        case 1: return bwd_io<NR, double>(sg, detach, soft, p, N, T, F, c, alpha);
        case 2: return bwd_io<NR, snetx::f16>(sg, detach, soft, p, N, T, F, c, alpha);
        case 3: return bwd_io<NR, snetx::bf16>(sg, detach, soft, p, N, T, F, c, alpha);
    }
    return 1;
}
}  // namespace

extern "C" void host_set_launch(int blocks, int threads) {
    grid = blocks;
    block = threads;
}

// neuron: index in SNETX_NEURONS; io: 0 float, 1 double, 2 f16, 3 bf16; c: 4 constants
extern "C" int host_forward(int neuron, int io, int soft, const void* x, void* ckpt, void* s,
                            const void* st0, void* st_last, const void* k, long long N,
                            long long T, long long F, const double* c) {
    Ptrs p = {};
    p.x = x, p.ckpt = ckpt, p.s = s, p.st0 = st0, p.st_last = st_last, p.k = k;
    int index = 0;
#define NEURON_CASE(NAME, NR) \
    if (neuron == index++) return fwd_neuron<NR>(io, soft, p, N, T, F, c);
    SNETX_NEURONS(NEURON_CASE)
#undef NEURON_CASE
    return 1;
}

extern "C" int host_backward(int neuron, int io, int sg, int detach, int soft, const void* x,
                             const void* ckpt, const void* gs, void* gx, const void* g_stlast,
                             const void* st0, const void* k, void* g_st0, void* g_k,
                             long long N, long long T, long long F, const double* c,
                             double alpha) {
    Ptrs p = {};
    p.x = x, p.ckpt_in = ckpt, p.gs = gs, p.gx = gx, p.g_stlast = g_stlast, p.st0 = st0;
    p.k = k, p.g_st0 = g_st0, p.g_k = g_k;
    int index = 0;
#define NEURON_CASE(NAME, NR) \
    if (neuron == index++) return bwd_neuron<NR>(io, sg, detach, soft, p, N, T, F, c, alpha);
    SNETX_NEURONS(NEURON_CASE)
#undef NEURON_CASE
    return 1;
}

// The CUDA driver of the neuron family (snetx-core's neurons.cuh): one template over the
// neuron struct. One thread per neuron walks time (layout N x T x F, neuron (n, f) at
// n*T*F + f, step stride F), so each element is read or written once: forward reads x,
// writes s; backward reads x and grad_s, writes grad_x. The backward recomputes the steps
// from x, chunk by chunk in registers, starting each chunk from the state the forward kept
// at its start (ckpt: the STATES values of every neuron per SNETX_CHUNK steps).
#include "io.cuh"

namespace snetx {

// Steps whose loads a thread issues before it uses any of them. With one load in flight
// per thread, an SM holds at most 2048 x 4 B of requests, far below what H100/H200-class
// memory needs in flight (bandwidth x latency, tens of KB per SM); a chunk of independent
// loads per thread closes that gap. The host build runs the same loops.
#define SNETX_CHUNK 8
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SNETX_UNROLL _Pragma("unroll")
#else
#define SNETX_UNROLL
#endif

// Layouts (as snetx-core's host driver): state-sized arrays st0, st_last, g_stlast, g_st0
// are STATES x N x F; k DECAYS x F; g_k (each neuron's dL/dk) DECAYS x N x F; ckpt
// N x ceil(T / SNETX_CHUNK) x STATES x F, the state before each chunk's first step. They
// hold the state type (float, or double for double I/O). Optional pointers are null when
// absent: ckpt (no graph to feed), st0 (rest), st_last, g_stlast, g_st0, g_k (not wanted).
// cs holds the neuron's constants (v_th, v_reset, then its own).
template <template <typename> class NEURON, typename IO, bool SOFT>
__host__ __device__ inline void forward_neuron(
    const IO* x, typename state_of<IO>::type* ckpt, IO* s, const typename state_of<IO>::type* st0,
    typename state_of<IO>::type* st_last, const typename state_of<IO>::type* k, long long i,
    long long NF, long long T, long long F, const typename state_of<IO>::type* cs) {
    typedef typename state_of<IO>::type S;
    typedef NEURON<S> Nr;
    const int NS = Nr::STATES, ND = Nr::DECAYS;
    const long long n = i / F, f = i - n * F, base = n * T * F + f;
    const long long chunks = (T + SNETX_CHUNK - 1) / SNETX_CHUNK;
    S st[NS], kv[ND];
    for (int j = 0; j < NS; ++j) st[j] = st0 != nullptr ? st0[j * NF + i] : S(0);
    for (int d = 0; d < ND; ++d) kv[d] = k[d * F + f];
    for (long long t0 = 0; t0 < T; t0 += SNETX_CHUNK) {
        S xs[SNETX_CHUNK];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c)
            xs[c] = t0 + c < T ? load(x[base + (t0 + c) * F]) : S(0);
        // after the loads, so they are all in flight first
        if (ckpt != nullptr)
            for (int j = 0; j < NS; ++j)
                ckpt[((n * chunks + t0 / SNETX_CHUNK) * NS + j) * F + f] = st[j];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            if (t0 + c < T) {
                const S spike = Nr::template step<SOFT>(st, xs[c], kv, cs);
                s[base + (t0 + c) * F] = store<IO>(spike);
            }
        }
    }
    if (st_last != nullptr)
        for (int j = 0; j < NS; ++j) st_last[j * NF + i] = st[j];
}

template <template <typename> class NEURON, typename IO, int SG, bool DETACH, bool SOFT>
__host__ __device__ inline void backward_neuron(
    const IO* x, const typename state_of<IO>::type* ckpt, const IO* gs, IO* gx,
    const typename state_of<IO>::type* g_stlast, const typename state_of<IO>::type* st0,
    const typename state_of<IO>::type* k, typename state_of<IO>::type* g_st0,
    typename state_of<IO>::type* g_k, long long i, long long NF, long long T, long long F,
    const typename state_of<IO>::type* cs, typename state_of<IO>::type alpha) {
    typedef typename state_of<IO>::type S;
    typedef NEURON<S> Nr;
    const int NS = Nr::STATES, ND = Nr::DECAYS;
    const long long n = i / F, f = i - n * F, base = n * T * F + f;
    const long long chunks = (T + SNETX_CHUNK - 1) / SNETX_CHUNK;
    S g_st[NS], kv[ND], gk[ND];
    for (int j = 0; j < NS; ++j) g_st[j] = g_stlast != nullptr ? g_stlast[j * NF + i] : S(0);
    for (int d = 0; d < ND; ++d) kv[d] = k[d * F + f], gk[d] = S(0);
    // chunks from the last: recompute the chunk's steps forward from its checkpoint (the
    // same step() as the forward, so the same bits), then walk them backwards
    for (long long c0 = chunks - 1; c0 >= 0; --c0) {
        const long long t0 = c0 * SNETX_CHUNK;
        S xs[SNETX_CHUNK], gss[SNETX_CHUNK], pre[SNETX_CHUNK][NS], st[NS];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            const bool in = t0 + c < T;
            const long long o = base + (t0 + c) * F;
            xs[c] = in ? load(x[o]) : S(0);
            gss[c] = in ? load(gs[o]) : S(0);
        }
        for (int j = 0; j < NS; ++j) st[j] = ckpt[((n * chunks + c0) * NS + j) * F + f];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            for (int j = 0; j < NS; ++j) pre[c][j] = st[j];
            if (t0 + c < T) Nr::template step<SOFT>(st, xs[c], kv, cs);
        }
        SNETX_UNROLL
        for (int c = SNETX_CHUNK - 1; c >= 0; --c) {
            if (t0 + c < T) {
                const S g_x = Nr::template grad_step<SG, DETACH, SOFT>(pre[c], xs[c], kv, cs,
                                                                       alpha, gss[c], g_st, gk);
                gx[base + (t0 + c) * F] = store<IO>(g_x);
            }
        }
    }
    if (g_st0 != nullptr)
        for (int j = 0; j < NS; ++j) g_st0[j * NF + i] = g_st[j];
    if (g_k != nullptr)
        for (int d = 0; d < ND; ++d) g_k[d * NF + i] = gk[d];
}

// 64-bit grid-stride loops over the N*F neurons; one signature for every neuron.
template <template <typename> class NEURON, typename IO, bool SOFT>
__global__ void forward(const IO* __restrict__ x, typename state_of<IO>::type* __restrict__ ckpt,
                        IO* __restrict__ s, const typename state_of<IO>::type* __restrict__ st0,
                        typename state_of<IO>::type* __restrict__ st_last,
                        const typename state_of<IO>::type* __restrict__ k, long long NF,
                        long long T, long long F, typename state_of<IO>::type c0,
                        typename state_of<IO>::type c1, typename state_of<IO>::type c2,
                        typename state_of<IO>::type c3) {
    const typename state_of<IO>::type cs[4] = {c0, c1, c2, c3};
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        forward_neuron<NEURON, IO, SOFT>(x, ckpt, s, st0, st_last, k, i, NF, T, F, cs);
}

template <template <typename> class NEURON, typename IO, int SG, bool DETACH, bool SOFT>
__global__ void backward(const IO* __restrict__ x,
                         const typename state_of<IO>::type* __restrict__ ckpt,
                         const IO* __restrict__ gs, IO* __restrict__ gx,
                         const typename state_of<IO>::type* __restrict__ g_stlast,
                         const typename state_of<IO>::type* __restrict__ st0,
                         const typename state_of<IO>::type* __restrict__ k,
                         typename state_of<IO>::type* __restrict__ g_st0,
                         typename state_of<IO>::type* __restrict__ g_k, long long NF, long long T,
                         long long F, typename state_of<IO>::type c0,
                         typename state_of<IO>::type c1, typename state_of<IO>::type c2,
                         typename state_of<IO>::type c3, typename state_of<IO>::type alpha) {
    const typename state_of<IO>::type cs[4] = {c0, c1, c2, c3};
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        backward_neuron<NEURON, IO, SG, DETACH, SOFT>(x, ckpt, gs, gx, g_stlast, st0, k, g_st0,
                                                      g_k, i, NF, T, F, cs, alpha);
}

}  // namespace snetx

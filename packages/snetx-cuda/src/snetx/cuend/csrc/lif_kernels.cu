// snetx.cuend LIF kernels: one thread per neuron walks time (layout N x T x F, neuron
// (n, f) at n*T*F + f, step stride F), so each element is read or written once:
// forward reads x, writes s; backward reads x and grad_s, writes grad_x. The backward
// recomputes the charges h from x, chunk by chunk in registers, starting each chunk from
// the membrane the forward kept at its start (ckpt: one state value per SNETX_CHUNK steps).
// The dynamics come from snetx-core's neurons.cuh (shared with the CPU kernel).
#include "lif_io.cuh"

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

// ckpt is N x ceil(T / SNETX_CHUNK) x F state values: u before each chunk's first step.
// Optional pointers are null when absent, as in snetx-core's host kernel: ckpt (no graph
// to feed), u0 (start from rest), u_last (final state not wanted), k (one decay for all, else
// one per feature); in the backward g_ulast (no gradient reaches the final state), g_u0 and
// g_k (dL/du0 and each neuron's dL/dk, not wanted). State-sized tensors (u0, u_last, k,
// g_ulast, g_u0, g_k) hold the state type: float, or double for double I/O.
template <typename IO, bool SOFT>
__host__ __device__ inline void forward_neuron(const IO* x, typename state_of<IO>::type* ckpt,
                                               IO* s,
                                               const typename state_of<IO>::type* u0,
                                               typename state_of<IO>::type* u_last,
                                               const typename state_of<IO>::type* k, long long i,
                                               long long T, long long F,
                                               typename state_of<IO>::type decay,
                                               typename state_of<IO>::type v_th,
                                               typename state_of<IO>::type v_reset) {
    typedef typename state_of<IO>::type S;
    const long long n = i / F, f = i - n * F, base = n * T * F + f;
    const long long chunks = (T + SNETX_CHUNK - 1) / SNETX_CHUNK;
    S u = u0 != nullptr ? u0[i] : S(0);
    const S dec = k != nullptr ? k[f] : decay;
    for (long long t0 = 0; t0 < T; t0 += SNETX_CHUNK) {
        S xs[SNETX_CHUNK];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c)
            xs[c] = t0 + c < T ? load(x[base + (t0 + c) * F]) : S(0);
        // after the loads, so they are all in flight first
        if (ckpt != nullptr) ckpt[(n * chunks + t0 / SNETX_CHUNK) * F + f] = u;
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            if (t0 + c < T) {
                const long long o = base + (t0 + c) * F;
                S spike;
                lif_step<SOFT, S>(u, xs[c], dec, v_th, v_reset, spike);
                s[o] = store<IO>(spike);
            }
        }
    }
    if (u_last != nullptr) u_last[i] = u;
}

template <typename IO, int SG, bool DETACH, bool SOFT>
__host__ __device__ inline void backward_neuron(
    const IO* x, const typename state_of<IO>::type* ckpt, const IO* gs, IO* gx, const typename state_of<IO>::type* g_ulast,
    const typename state_of<IO>::type* u0, const typename state_of<IO>::type* k,
    typename state_of<IO>::type* g_u0, typename state_of<IO>::type* g_k, long long i, long long T,
    long long F, typename state_of<IO>::type decay, typename state_of<IO>::type v_th,
    typename state_of<IO>::type v_reset, typename state_of<IO>::type alpha) {
    typedef typename state_of<IO>::type S;
    const long long n = i / F, f = i - n * F, base = n * T * F + f;
    S g_u = g_ulast != nullptr ? g_ulast[i] : S(0);
    const S dec = k != nullptr ? k[f] : decay;
    S g_h = S(0), gk = S(0);
    const long long chunks = (T + SNETX_CHUNK - 1) / SNETX_CHUNK;
    // chunks from the last: recompute the chunk's charges forward from its checkpoint (the
    // same lif_step as the forward, so the same bits), then walk them backwards
    for (long long c0 = chunks - 1; c0 >= 0; --c0) {
        const long long t0 = c0 * SNETX_CHUNK;
        S hs[SNETX_CHUNK], gss[SNETX_CHUNK];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            const bool in = t0 + c < T;
            const long long o = base + (t0 + c) * F;
            hs[c] = in ? load(x[o]) : S(0);
            gss[c] = in ? load(gs[o]) : S(0);
        }
        S u = ckpt[(n * chunks + c0) * F + f];
        SNETX_UNROLL
        for (int c = 0; c < SNETX_CHUNK; ++c) {
            S spike;
            if (t0 + c < T) hs[c] = lif_step<SOFT, S>(u, hs[c], dec, v_th, v_reset, spike);
        }
        SNETX_UNROLL
        for (int c = SNETX_CHUNK - 1; c >= 0; --c) {
            if (t0 + c < T) {
                if (g_k != nullptr) lif_grad_k_step<SOFT, S>(gk, g_h, hs[c], v_th, v_reset);
                g_h = lif_grad_step<SG, DETACH, SOFT, S>(g_u, hs[c], gss[c], dec, v_th, v_reset,
                                                         alpha);
                gx[base + (t0 + c) * F] = store<IO>(g_h);
            }
        }
    }
    if (g_u0 != nullptr) g_u0[i] = g_u;  // g_h[0] * decay
    if (g_k != nullptr) g_k[i] = gk + g_h * (u0 != nullptr ? u0[i] : S(0));
}

// 64-bit grid-stride loops over the N*F neurons.
template <typename IO, bool SOFT>
__global__ void lif_forward(const IO* __restrict__ x,
                            typename state_of<IO>::type* __restrict__ ckpt, IO* __restrict__ s,
                            const typename state_of<IO>::type* __restrict__ u0,
                            typename state_of<IO>::type* __restrict__ u_last,
                            const typename state_of<IO>::type* __restrict__ k, long long NF,
                            long long T, long long F, typename state_of<IO>::type decay,
                            typename state_of<IO>::type v_th,
                            typename state_of<IO>::type v_reset) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        forward_neuron<IO, SOFT>(x, ckpt, s, u0, u_last, k, i, T, F, decay, v_th, v_reset);
}

template <typename IO, int SG, bool DETACH, bool SOFT>
__global__ void lif_backward(const IO* __restrict__ x,
                             const typename state_of<IO>::type* __restrict__ ckpt,
                             const IO* __restrict__ gs,
                             IO* __restrict__ gx,
                             const typename state_of<IO>::type* __restrict__ g_ulast,
                             const typename state_of<IO>::type* __restrict__ u0,
                             const typename state_of<IO>::type* __restrict__ k,
                             typename state_of<IO>::type* __restrict__ g_u0,
                             typename state_of<IO>::type* __restrict__ g_k, long long NF,
                             long long T, long long F, typename state_of<IO>::type decay,
                             typename state_of<IO>::type v_th,
                             typename state_of<IO>::type v_reset,
                             typename state_of<IO>::type alpha) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        backward_neuron<IO, SG, DETACH, SOFT>(x, ckpt, gs, gx, g_ulast, u0, k, g_u0, g_k, i, T,
                                              F, decay, v_th, v_reset, alpha);
}

}  // namespace snetx

// snetx.cuend LIF kernels: one thread per neuron walks time (layout N x T x F, neuron
// (n, f) at n*T*F + f, step stride F), so each element is read or written once:
// forward reads x, writes h and s; backward reads h and grad_s, writes grad_x.
// The dynamics come from snetx-core's lif_neuron.cuh (shared with the CPU kernel).
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

template <typename IO>
__host__ __device__ inline void forward_neuron(const IO* x, IO* h, IO* s, long long i, long long T,
                                               long long F, typename state_of<IO>::type decay,
                                               typename state_of<IO>::type v_th,
                                               typename state_of<IO>::type v_reset) {
    typedef typename state_of<IO>::type S;
    const long long n = i / F, base = n * T * F + (i - n * F);
    S u = S(0);
    for (long long t0 = 0; t0 < T; t0 += SNETX_CHUNK) {
        S xs[SNETX_CHUNK];
        SNETX_UNROLL
        for (int k = 0; k < SNETX_CHUNK; ++k)
            xs[k] = t0 + k < T ? load(x[base + (t0 + k) * F]) : S(0);
        SNETX_UNROLL
        for (int k = 0; k < SNETX_CHUNK; ++k) {
            if (t0 + k < T) {
                const long long o = base + (t0 + k) * F;
                S spike;
                S hv = lif_step<S>(u, xs[k], decay, v_th, v_reset, spike);
                if (h != nullptr) h[o] = store_h<IO>(hv, v_th);  // null: no graph to feed
                s[o] = store<IO>(spike);
            }
        }
    }
}

template <typename IO, int SG, bool DETACH>
__host__ __device__ inline void backward_neuron(const IO* h, const IO* gs, IO* gx, long long i,
                                                long long T, long long F,
                                                typename state_of<IO>::type decay,
                                                typename state_of<IO>::type v_th,
                                                typename state_of<IO>::type v_reset,
                                                typename state_of<IO>::type alpha) {
    typedef typename state_of<IO>::type S;
    const long long n = i / F, base = n * T * F + (i - n * F);
    S g_u = S(0);
    // chunks walk time backwards: step t1 - k for k = 0 .. SNETX_CHUNK-1
    for (long long t1 = T - 1; t1 >= 0; t1 -= SNETX_CHUNK) {
        S hs[SNETX_CHUNK], gss[SNETX_CHUNK];
        SNETX_UNROLL
        for (int k = 0; k < SNETX_CHUNK; ++k) {
            const bool in = t1 - k >= 0;
            const long long o = base + (t1 - k) * F;
            hs[k] = in ? load(h[o]) : S(0);
            gss[k] = in ? load(gs[o]) : S(0);
        }
        SNETX_UNROLL
        for (int k = 0; k < SNETX_CHUNK; ++k) {
            if (t1 - k >= 0) {
                gx[base + (t1 - k) * F] = store<IO>(lif_grad_step<SG, DETACH, S>(
                    g_u, hs[k], gss[k], decay, v_th, v_reset, alpha));
            }
        }
    }
}

// 64-bit grid-stride loops over the N*F neurons.
template <typename IO>
__global__ void lif_forward(const IO* __restrict__ x, IO* __restrict__ h, IO* __restrict__ s,
                            long long NF, long long T, long long F,
                            typename state_of<IO>::type decay, typename state_of<IO>::type v_th,
                            typename state_of<IO>::type v_reset) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        forward_neuron<IO>(x, h, s, i, T, F, decay, v_th, v_reset);
}

template <typename IO, int SG, bool DETACH>
__global__ void lif_backward(const IO* __restrict__ h, const IO* __restrict__ gs,
                             IO* __restrict__ gx, long long NF, long long T, long long F,
                             typename state_of<IO>::type decay, typename state_of<IO>::type v_th,
                             typename state_of<IO>::type v_reset,
                             typename state_of<IO>::type alpha) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < NF;
         i += (long long)gridDim.x * blockDim.x)
        backward_neuron<IO, SG, DETACH>(h, gs, gx, i, T, F, decay, v_th, v_reset, alpha);
}

}  // namespace snetx

// snetx.cuend LIF kernels: one thread per neuron walks time (layout N x T x F, neuron
// (n, f) at n*T*F + f, step stride F), so each element is read or written once:
// forward reads x, writes h and s; backward reads h and grad_s, writes grad_x.
// The dynamics come from snetx-core's lif_neuron.cuh (shared with the CPU kernel).
#include "lif_io.cuh"

namespace snetx {

template <typename IO>
__host__ __device__ inline void forward_neuron(const IO* x, IO* h, IO* s, long long i, long long T,
                                               long long F, typename state_of<IO>::type decay,
                                               typename state_of<IO>::type v_th,
                                               typename state_of<IO>::type v_reset) {
    typedef typename state_of<IO>::type S;
    const long long n = i / F, base = n * T * F + (i - n * F);
    S u = S(0);
    for (long long t = 0; t < T; ++t) {
        const long long o = base + t * F;
        S spike;
        S hv = lif_step<S>(u, load(x[o]), decay, v_th, v_reset, spike);
        h[o] = store_h<IO>(hv, v_th);
        s[o] = store<IO>(spike);
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
    for (long long t = T - 1; t >= 0; --t) {
        const long long o = base + t * F;
        gx[o] = store<IO>(lif_grad_step<SG, DETACH, S>(g_u, load(h[o]), load(gs[o]), decay, v_th,
                                                       v_reset, alpha));
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

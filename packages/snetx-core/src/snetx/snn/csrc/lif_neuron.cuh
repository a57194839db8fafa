// Per-neuron LIF dynamics (docs/specification.md): the one source of truth for every native
// backend. snetx-core builds it for the host (lif_cpu.cpp, g++), snetx-cuda for the GPU
// (NVRTC); other code finds this folder with snetx.snn.include_dir(). Nothing here depends
// on the device; state S is float or double.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SNETX_HD __host__ __device__ __forceinline__
#else
#include <cmath>
#define SNETX_HD inline
#endif

namespace snetx {
#if !(defined(__CUDACC__) || defined(__CUDACC_RTC__))
using std::exp;
using std::fabs;
#endif

// Surrogate ids: the numbers of snetx.snn.surrogate.SURROGATE_IDS (a test compares them).
enum SurrogateId { ARCTAN = 0, SIGMOID = 1, RECTANGULAR = 2, TRIANGLE = 3, FAST_SIGMOID = 4, STE = 5 };
// Every id, for dispatch tables: X(ARCTAN) X(SIGMOID) ...
#define SNETX_SURROGATES(X)                                                                  \
    X(::snetx::ARCTAN) X(::snetx::SIGMOID) X(::snetx::RECTANGULAR) X(::snetx::TRIANGLE)     \
    X(::snetx::FAST_SIGMOID) X(::snetx::STE)

// sigma'(z; alpha), the surrogate table (docs/specification.md).
template <int SG, typename S>
SNETX_HD S surrogate_grad(S z, S a) {
    if (SG == ARCTAN) {
        S c = S(1.5707963267948966) * a * z;
        return a / (S(2) * (S(1) + c * c));
    } else if (SG == SIGMOID) {
        S g = S(1) / (S(1) + exp(-a * z));
        return a * g * (S(1) - g);
    } else if (SG == RECTANGULAR) {
        return fabs(z) < S(1) / (S(2) * a) ? a : S(0);
    } else if (SG == TRIANGLE) {
        S v = a - a * a * fabs(z);
        return v > S(0) ? v : S(0);
    } else if (SG == FAST_SIGMOID) {
        S d = S(1) + a * fabs(z);
        return S(1) / (d * d);
    } else {
        return S(1);
    }
}

// The membrane after the reset, from the charged potential: hard (to v_reset) or soft (by
// subtraction of v_th). The backward recomputes u[t-1] with this same expression, so it
// rounds exactly as the forward did.
template <bool SOFT, typename S>
SNETX_HD S lif_reset(S h, S v_th, S v_reset) {
    return h >= v_th ? (SOFT ? h - v_th : v_reset) : h;
}

// One forward step: charge, fire (h >= v_th), reset. Returns h; sets spike and u.
template <bool SOFT, typename S>
SNETX_HD S lif_step(S& u, S x, S decay, S v_th, S v_reset, S& spike) {
    S h = u * decay + x;
    spike = h >= v_th ? S(1) : S(0);
    u = lif_reset<SOFT, S>(h, v_th, v_reset);
    return h;
}

// One backward step (t descending). g_u holds dL/du[t] on entry (g_h[t+1] * decay, or the
// gradient that reaches the final state at t = T-1) and dL/du[t-1] on exit. Returns
// g_h[t] = g_x[t].
template <int SG, bool DETACH, bool SOFT, typename S>
SNETX_HD S lif_grad_step(S& g_u, S h, S g_s, S decay, S v_th, S v_reset, S alpha) {
    S z = h - v_th;
    S sg = surrogate_grad<SG, S>(z, alpha);
    S du_dh;
    if (SOFT) {
        du_dh = DETACH ? S(1) : S(1) - v_th * sg;                 // u = h - v_th s
    } else {
        S keep = z >= S(0) ? S(0) : S(1);                        // 1 - s
        du_dh = DETACH ? keep : keep + (v_reset - h) * sg;       // u = h (1 - s) + v_reset s
    }
    S g_h = g_s * sg + g_u * du_dh;
    g_u = g_h * decay;
    return g_h;
}

// The learnable decay's gradient of one neuron, dL/dk = sum_t g_h[t] u[t-1], accumulated
// while the backward walks time down: at step t (holding h[t]) it adds g_h[t+1] u[t], with
// u[t] recomputed from h[t]; the caller adds g_h[0] u[-1] at the end.
template <bool SOFT, typename S>
SNETX_HD void lif_grad_k_step(S& g_k, S g_h_next, S h, S v_th, S v_reset) {
    g_k += g_h_next * lif_reset<SOFT, S>(h, v_th, v_reset);
}

}  // namespace snetx

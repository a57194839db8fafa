// The neuron family (docs/neurons.md): one struct per neuron, the one source of truth for
// every native backend. snetx-core's host driver (host_driver.cpp, g++) and snetx-cuda's
// CUDA driver (NVRTC) are templates over these structs; other code finds this folder with
// snetx.snn.include_dir(). Nothing here depends on the device; S is float or double.
//
// A neuron is a struct template over S with
//   STATES, DECAYS        how many state variables and decays (1 / time constant) it has,
//                         in the order of its Python description (snetx.snn.family);
//   step<SOFT>(st, x, k, c)
//                         one time step: reads and updates the state st[STATES] with the
//                         input x, the decays k[DECAYS] and the constants c[] (c[0] v_th,
//                         c[1] v_reset, then the neuron's own); returns the spike (0 or 1);
//   grad_step<SG, DETACH, SOFT>(pre, x, k, c, alpha, g_s, g_st, g_k)
//                         the same step's gradient: from the state before the step pre[],
//                         x and the output spike's gradient g_s, with g_st[] holding
//                         dL/dst[t] on entry and dL/dst[t-1] on exit; adds dL/dk to g_k[];
//                         returns dL/dx[t]. It recomputes the step from pre[] with the same
//                         expressions as step(), so it sees the very charge that fired.
// Adding a neuron: a struct here, its line in SNETX_NEURONS, its Python description
// (docs/adding-a-neuron.md).
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


// The membrane after the reset, from the charged potential h and the threshold it was
// compared with: hard (to v_reset) or soft (by subtraction of the threshold).
template <bool SOFT, typename S>
SNETX_HD S reset(S h, S th, S v_reset) {
    return h >= th ? (SOFT ? h - th : v_reset) : h;
}

// The gradient through the reset u(h, s, th), given dL/du = g_u: returns dL/dh at a fixed
// spike, adds dL/ds to g_spike (unless DETACH: there the spike is a constant) and dL/dth to
// g_th. Hard: u = h (1 - s) + v_reset s; soft: u = h - th s.
template <bool DETACH, bool SOFT, typename S>
SNETX_HD S reset_grad(S g_u, S h, S s, S th, S v_reset, S& g_spike, S& g_th) {
    if (SOFT) {
        g_th -= g_u * s;
        if (!DETACH) g_spike -= g_u * th;
        return g_u;
    }
    if (!DETACH) g_spike += g_u * (v_reset - h);
    return g_u * (S(1) - s);
}

// LIF (IF: decay 1; PLIF: a learned decay). State (u); decay k = 1/tau.
//   h = u k + x,  s = H(h - v_th),  u = reset(h)
template <typename S>
struct Lif {
    enum { STATES = 1, DECAYS = 1 };
    template <bool SOFT>
    SNETX_HD static S step(S* st, S x, const S* k, const S* c) {
        const S h = st[0] * k[0] + x;
        st[0] = reset<SOFT, S>(h, c[0], c[1]);
        return h >= c[0] ? S(1) : S(0);
    }
    template <int SG, bool DETACH, bool SOFT>
    SNETX_HD static S grad_step(const S* pre, S x, const S* k, const S* c, S alpha, S g_s,
                                S* g_st, S* g_k) {
        const S h = pre[0] * k[0] + x, s = h >= c[0] ? S(1) : S(0);
        S g_spike = g_s, g_th = S(0);  // g_th unused: v_th is a constant
        const S direct = reset_grad<DETACH, SOFT, S>(g_st[0], h, s, c[0], c[1], g_spike, g_th);
        const S g_h = g_spike * surrogate_grad<SG, S>(h - c[0], alpha) + direct;
        g_k[0] += g_h * pre[0];
        g_st[0] = g_h * k[0];
        return g_h;
    }
};

// Current-based LIF (CubaLIF): a synaptic current feeding a LIF. State (i, u); decays
// (1/tau_syn, 1/tau).  i = i k0 + x, then the LIF on (u; i; k1)
template <typename S>
struct CubaLif {
    enum { STATES = 2, DECAYS = 2 };
    template <bool SOFT>
    SNETX_HD static S step(S* st, S x, const S* k, const S* c) {
        st[0] = st[0] * k[0] + x;
        return Lif<S>::template step<SOFT>(st + 1, st[0], k + 1, c);
    }
    template <int SG, bool DETACH, bool SOFT>
    SNETX_HD static S grad_step(const S* pre, S x, const S* k, const S* c, S alpha, S g_s,
                                S* g_st, S* g_k) {
        const S i = pre[0] * k[0] + x;
        // the LIF's part: dL/dh (its input, this step's current) and its state's gradient
        const S g_h =
            Lif<S>::template grad_step<SG, DETACH, SOFT>(pre + 1, i, k + 1, c, alpha, g_s,
                                                          g_st + 1, g_k + 1);
        const S g_i = g_st[0] + g_h;
        g_k[0] += g_i * pre[0];
        g_st[0] = g_i * k[0];
        return g_i;
    }
};

// Adaptive-threshold LIF (ALIF). State (u, a); decays (1/tau, 1/tau_adapt); c[2] = beta.
//   h = u k0 + x,  th = v_th + beta a,  s = H(h - th),  u = reset(h, th),  a = a k1 + s
template <typename S>
struct Alif {
    enum { STATES = 2, DECAYS = 2 };
    template <bool SOFT>
    SNETX_HD static S step(S* st, S x, const S* k, const S* c) {
        const S h = st[0] * k[0] + x;
        const S th = c[0] + c[2] * st[1];
        const S s = h >= th ? S(1) : S(0);
        st[0] = reset<SOFT, S>(h, th, c[1]);
        st[1] = st[1] * k[1] + s;
        return s;
    }
    template <int SG, bool DETACH, bool SOFT>
    SNETX_HD static S grad_step(const S* pre, S x, const S* k, const S* c, S alpha, S g_s,
                                S* g_st, S* g_k) {
        const S h = pre[0] * k[0] + x, th = c[0] + c[2] * pre[1];
        const S s = h >= th ? S(1) : S(0);
        // the spike's gradient: the output's and (unless detached) the adaptation's and reset's
        S g_spike = g_s + (DETACH ? S(0) : g_st[1]), g_th = S(0);
        const S direct = reset_grad<DETACH, SOFT, S>(g_st[0], h, s, th, c[1], g_spike, g_th);
        const S g_z = g_spike * surrogate_grad<SG, S>(h - th, alpha);
        const S g_h = g_z + direct;
        g_th -= g_z;
        g_k[0] += g_h * pre[0];
        g_k[1] += g_st[1] * pre[1];
        g_st[1] = g_st[1] * k[1] + c[2] * g_th;
        g_st[0] = g_h * k[0];
        return g_h;
    }
};

// Every neuron: X(python name, struct). The host driver exports snetx_<name>_forward_f32
// and friends for each; the CUDA driver instantiates its kernels for each.
#define SNETX_NEURONS(X) X(lif, ::snetx::Lif) X(cubalif, ::snetx::CubaLif) X(alif, ::snetx::Alif)

}  // namespace snetx

// Host build of lif_neuron.cuh for snetx.snn (float32/float64, contiguous N x T x F).
// Each thread owns a block of neurons and walks time inside it, so every element of x,
// h, s (forward) and h, g_s, g_x (backward) is touched exactly once.
#include <cstdint>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "lif_neuron.cuh"

namespace {
constexpr int64_t kBlock = 512;  // neurons per inner vector loop; their state lives on the stack

// Large fresh outputs are mmap'ed and paid for page by page on first touch; asking for
// transparent huge pages before the kernel writes them cuts that cost (what PyTorch's
// THP_MEM_ALLOC_ENABLE does for its own allocations). Advice only: results are unchanged.
// Only for buffers of 32 MiB and more: glibc serves smaller ones from reused heap memory
// (already touched), where the advice only risks compaction stalls.
void advise_huge_pages(void* p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes < (int64_t(32) << 20)) return;
    const uintptr_t huge = uintptr_t(2) << 20;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + huge - 1) & ~(huge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes)) & ~(huge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

// Runs body(o0, len, state) for every block of up to kBlock neurons: o0 is the
// block's offset at t = 0 (step t adds t * F), state a zero-filled array the block keeps
// across time. Blocks are spread over the threads.
template <typename S, typename Body>
void for_each_block(int64_t N, int64_t T, int64_t F, int threads, const Body& body) {
    const int64_t blocks = (F + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t f0 = b * kBlock, len = (F - f0 < kBlock) ? F - f0 : kBlock;
            S state[kBlock];
            for (int64_t i = 0; i < len; ++i) state[i] = S(0);
            body(n * T * F + f0, len, state);
        }
    }
}

// STORE_H is false for a forward whose h nobody will read (no graph is recorded): one
// output stream less.
template <typename S, bool STORE_H>
void forward(const S* x, S* h, S* s, int64_t N, int64_t T, int64_t F, S decay, S v_th,
             S v_reset, int threads) {
    if (STORE_H) advise_huge_pages(h, N * T * F * int64_t(sizeof(S)));
    advise_huge_pages(s, N * T * F * int64_t(sizeof(S)));
    for_each_block<S>(N, T, F, threads, [=](int64_t o0, int64_t len, S* u) {
        for (int64_t t = 0; t < T; ++t) {
            const int64_t o = o0 + t * F;
            for (int64_t i = 0; i < len; ++i) {
                S spike;
                const S hv = snetx::lif_step<S>(u[i], x[o + i], decay, v_th, v_reset, spike);
                if (STORE_H) h[o + i] = hv;
                s[o + i] = spike;
            }
        }
    });
}

// h may be null: then only the spikes are written.
template <typename S>
void forward_dispatch(const S* x, S* h, S* s, int64_t N, int64_t T, int64_t F, S decay, S v_th,
                      S v_reset, int threads) {
    if (h)
        forward<S, true>(x, h, s, N, T, F, decay, v_th, v_reset, threads);
    else
        forward<S, false>(x, h, s, N, T, F, decay, v_th, v_reset, threads);
}

template <int SG, bool DETACH, typename S>
void backward(const S* h, const S* gs, S* gx, int64_t N, int64_t T, int64_t F, S decay, S v_th,
              S v_reset, S alpha, int threads) {
    advise_huge_pages(gx, N * T * F * int64_t(sizeof(S)));
    for_each_block<S>(N, T, F, threads, [=](int64_t o0, int64_t len, S* g_u) {
        for (int64_t t = T - 1; t >= 0; --t) {
            const int64_t o = o0 + t * F;
            for (int64_t i = 0; i < len; ++i)
                gx[o + i] = snetx::lif_grad_step<SG, DETACH, S>(g_u[i], h[o + i], gs[o + i], decay,
                                                                v_th, v_reset, alpha);
        }
    });
}

template <typename S>
int backward_dispatch(const S* h, const S* gs, S* gx, int64_t N, int64_t T, int64_t F, S decay,
                      S v_th, S v_reset, S alpha, int sg, int detach, int threads) {
#define SNETX_CASE(ID)                                                                         \
    case ID:                                                                                   \
        if (detach)                                                                            \
            backward<ID, true, S>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha, threads);   \
        else                                                                                   \
            backward<ID, false, S>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha, threads);  \
        return 0;
    switch (sg) { SNETX_SURROGATES(SNETX_CASE) }
#undef SNETX_CASE
    return 1;  // unknown surrogate id
}
}  // namespace

extern "C" {
void snetx_lif_forward_f32(const float* x, float* h, float* s, int64_t N, int64_t T, int64_t F,
                           float decay, float v_th, float v_reset, int threads) {
    forward_dispatch<float>(x, h, s, N, T, F, decay, v_th, v_reset, threads);
}
void snetx_lif_forward_f64(const double* x, double* h, double* s, int64_t N, int64_t T,
                           int64_t F, double decay, double v_th, double v_reset, int threads) {
    forward_dispatch<double>(x, h, s, N, T, F, decay, v_th, v_reset, threads);
}
int snetx_lif_backward_f32(const float* h, const float* gs, float* gx, int64_t N, int64_t T,
                           int64_t F, float decay, float v_th, float v_reset, float alpha, int sg,
                           int detach, int threads) {
    return backward_dispatch<float>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha, sg, detach,
                                    threads);
}
int snetx_lif_backward_f64(const double* h, const double* gs, double* gx, int64_t N, int64_t T,
                           int64_t F, double decay, double v_th, double v_reset, double alpha,
                           int sg, int detach, int threads) {
    return backward_dispatch<double>(h, gs, gx, N, T, F, decay, v_th, v_reset, alpha, sg, detach,
                                     threads);
}
}

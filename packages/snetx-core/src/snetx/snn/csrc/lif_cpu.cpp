// Host build of lif_neuron.cuh for snetx.snn (float32/float64, contiguous N x T x F).
// Each thread owns a block of neurons and walks time inside it, so every element of x and
// s (forward) and of x, g_s and g_x (backward) is touched exactly once: 8 bytes per
// float32 element forward, 12 backward (large outputs with streaming stores, so no
// read-for-ownership adds to that). The backward recomputes the charges h from x into
// a block-sized buffer that stays in cache instead of reading a stored h.
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__AVX__)
#include <immintrin.h>
#endif
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

// Outputs of at least this many bytes are written with streaming stores: they do not fit
// in the caches anyway, and a plain store first reads the line it writes
// (read-for-ownership), a third more traffic than the data. Smaller outputs stay cached for
// the next layer, which reads them right away.
constexpr int64_t kStreamBytes = int64_t(32) << 20;

// Copies len values to dst, with non-temporal stores where `stream` and possible.
template <typename S>
inline void stream_out(S* dst, const S* src, int64_t len, bool stream) {
    if (!stream) {
        for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
        return;
    }
#if defined(__AVX__)
    const int64_t per = 32 / int64_t(sizeof(S));
    int64_t i = 0;
    while (i < len && (reinterpret_cast<uintptr_t>(dst + i) & 31)) {
        dst[i] = src[i];
        ++i;
    }
    for (; i + per <= len; i += per) {
        if (sizeof(S) == 4)
            _mm256_stream_ps(reinterpret_cast<float*>(dst + i),
                             _mm256_loadu_ps(reinterpret_cast<const float*>(src + i)));
        else
            _mm256_stream_pd(reinterpret_cast<double*>(dst + i),
                             _mm256_loadu_pd(reinterpret_cast<const double*>(src + i)));
    }
    for (; i < len; ++i) dst[i] = src[i];
#else
    std::memcpy(dst, src, size_t(len) * sizeof(S));
#endif
}

inline void stream_fence() {
#if defined(__AVX__)
    _mm_sfence();  // streamed stores are visible before the caller reads the output
#endif
}

// Runs body(n, f0, len) for every block of up to `block` (<= kBlock) neurons of one sample
// n (features f0 .. f0+len-1; step t of neuron f is at (n * T + t) * F + f). Blocks are
// spread over the threads.
template <typename Body>
void for_each_block(int64_t N, int64_t F, int threads, const Body& body,
                    int64_t block = kBlock) {
    const int64_t blocks = (F + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t f0 = b * block, len = (F - f0 < block) ? F - f0 : block;
            body(n, f0, len);
        }
    }
}

// Optional tensors are null when absent: u0 (start from rest), u_last (final state not
// wanted), k (one decay for all; else one per feature, length F). No h: the backward
// recomputes it from x.
template <typename S>
struct Forward {
    const S* x;
    S* s;
    const S* u0;
    S* u_last;
    const S* k;
    int64_t N, T, F;
    S decay, v_th, v_reset;
    int threads;
};

template <typename S, bool SOFT>
void forward(const Forward<S> a) {
    advise_huge_pages(a.s, a.N * a.T * a.F * int64_t(sizeof(S)));
    const bool stream = a.N * a.T * a.F * int64_t(sizeof(S)) >= kStreamBytes;
    for_each_block(a.N, a.F, a.threads, [=](int64_t n, int64_t f0, int64_t len) {
        S u[kBlock], decay[kBlock];
        for (int64_t i = 0; i < len; ++i) {
            u[i] = a.u0 ? a.u0[n * a.F + f0 + i] : S(0);
            decay[i] = a.k ? a.k[f0 + i] : a.decay;
        }
        S spikes[kBlock];
        for (int64_t t = 0; t < a.T; ++t) {
            const int64_t o = (n * a.T + t) * a.F + f0;
            for (int64_t i = 0; i < len; ++i)
                snetx::lif_step<SOFT, S>(u[i], a.x[o + i], decay[i], a.v_th, a.v_reset, spikes[i]);
            stream_out(a.s + o, spikes, len, stream);
        }
        if (a.u_last)
            for (int64_t i = 0; i < len; ++i) a.u_last[n * a.F + f0 + i] = u[i];
        stream_fence();
    });
}

// Optional: g_ulast (the gradient reaching the final state), u0, k (as in Forward), and the
// outputs g_u0 (dL/du0) and g_k (each neuron's dL/dk, summed by the caller).
template <typename S>
struct Backward {
    const S* x;
    const S* gs;
    S* gx;
    const S* g_ulast;
    const S* u0;
    const S* k;
    S* g_u0;
    S* g_k;
    int64_t N, T, F;
    S decay, v_th, v_reset, alpha;
    int threads;
};

// Neurons per backward block: the block's T charges (len x T values) are recomputed into a
// buffer of at most kRecompute bytes, so they are read back from cache; long sequences get
// narrower blocks (at least 16 neurons, for the vector loops).
constexpr int64_t kRecompute = int64_t(128) << 10;

template <typename S>
int64_t backward_block(int64_t T) {
    int64_t len = kRecompute / (int64_t(sizeof(S)) * (T > 0 ? T : 1));
    len = len < 16 ? 16 : (len > kBlock ? kBlock : len);
    return len - len % 16;
}

template <int SG, bool DETACH, bool SOFT, typename S>
void backward(const Backward<S> a) {
    advise_huge_pages(a.gx, a.N * a.T * a.F * int64_t(sizeof(S)));
    const bool stream = a.N * a.T * a.F * int64_t(sizeof(S)) >= kStreamBytes;
    for_each_block(a.N, a.F, a.threads, [=](int64_t n, int64_t f0, int64_t len) {
        thread_local std::vector<S> charges;  // h[t][i] of this block, recomputed from x
        if (charges.size() < size_t(a.T * len)) charges.resize(size_t(a.T * len));
        S* hb = charges.data();
        S g_u[kBlock], decay[kBlock], g_h[kBlock], g_k[kBlock];
        for (int64_t i = 0; i < len; ++i) {
            g_u[i] = a.u0 ? a.u0[n * a.F + f0 + i] : S(0);  // u while recomputing
            decay[i] = a.k ? a.k[f0 + i] : a.decay;
        }
        for (int64_t t = 0; t < a.T; ++t) {  // the forward again, the same expression
            const int64_t o = (n * a.T + t) * a.F + f0;
            for (int64_t i = 0; i < len; ++i) {
                S spike;
                hb[t * len + i] = snetx::lif_step<SOFT, S>(g_u[i], a.x[o + i], decay[i], a.v_th,
                                                           a.v_reset, spike);
            }
        }
        for (int64_t i = 0; i < len; ++i) {
            g_u[i] = a.g_ulast ? a.g_ulast[n * a.F + f0 + i] : S(0);
            g_h[i] = S(0);
            g_k[i] = S(0);
        }
        for (int64_t t = a.T - 1; t >= 0; --t) {
            const int64_t o = (n * a.T + t) * a.F + f0;
            for (int64_t i = 0; i < len; ++i) {
                const S hv = hb[t * len + i];
                if (a.g_k) snetx::lif_grad_k_step<SOFT, S>(g_k[i], g_h[i], hv, a.v_th, a.v_reset);
                g_h[i] = snetx::lif_grad_step<SG, DETACH, SOFT, S>(g_u[i], hv, a.gs[o + i],
                                                                    decay[i], a.v_th, a.v_reset,
                                                                    a.alpha);
            }
            stream_out(a.gx + o, g_h, len, stream);
        }
        for (int64_t i = 0; i < len; ++i) {
            const int64_t j = n * a.F + f0 + i;
            if (a.g_u0) a.g_u0[j] = g_u[i];  // g_h[0] * decay
            if (a.g_k) a.g_k[j] = g_k[i] + g_h[i] * (a.u0 ? a.u0[j] : S(0));
        }
        stream_fence();
    }, backward_block<S>(a.T));
}

template <typename S>
void forward_dispatch(const Forward<S>& a, int soft) {
    soft ? forward<S, true>(a) : forward<S, false>(a);
}

template <int SG, typename S>
void backward_rule(const Backward<S>& a, int detach, int soft) {
    if (detach)
        soft ? backward<SG, true, true, S>(a) : backward<SG, true, false, S>(a);
    else
        soft ? backward<SG, false, true, S>(a) : backward<SG, false, false, S>(a);
}

template <typename S>
int backward_dispatch(const Backward<S>& a, int sg, int detach, int soft) {
#define SNETX_CASE(ID)                           \
    case ID:                                     \
        backward_rule<ID, S>(a, detach, soft);   \
        return 0;
    switch (sg) { SNETX_SURROGATES(SNETX_CASE) }
#undef SNETX_CASE
    return 1;  // unknown surrogate id
}
}  // namespace

// The C interface (ctypes): one forward and one backward per state type.
#define SNETX_API(S, SUFFIX)                                                                      \
    extern "C" void snetx_lif_forward_##SUFFIX(                                                   \
        const S* x, S* s, const S* u0, S* u_last, const S* k, int64_t N, int64_t T, int64_t F,    \
        S decay, S v_th, S v_reset, int soft, int threads) {                                      \
        forward_dispatch<S>({x, s, u0, u_last, k, N, T, F, decay, v_th, v_reset, threads}, soft); \
    }                                                                                             \
    extern "C" int snetx_lif_backward_##SUFFIX(                                                   \
        const S* x, const S* gs, S* gx, const S* g_ulast, const S* u0, const S* k, S* g_u0,      \
        S* g_k, int64_t N, int64_t T, int64_t F, S decay, S v_th, S v_reset, S alpha, int sg,     \
        int detach, int soft, int threads) {                                                      \
        return backward_dispatch<S>(                                                              \
            {x, gs, gx, g_ulast, u0, k, g_u0, g_k, N, T, F, decay, v_th, v_reset, alpha, threads}, \
            sg, detach, soft);                                                                    \
    }
SNETX_API(float, f32)
SNETX_API(double, f64)

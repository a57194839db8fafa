// The host driver of the neuron family (neurons.cuh) for snetx.snn: float32/float64,
// contiguous N x T x F, one template over the neuron struct, exported per neuron.
// Each thread owns a block of neurons and walks time inside it, so every element of x and
// s (forward) and of x, g_s and g_x (backward) is touched exactly once: 8 bytes per
// float32 element forward, 12 backward (large outputs with streaming stores, so no
// read-for-ownership adds to that). The backward recomputes the forward (each step's input
// and the state before it) into a block-sized buffer that stays in cache, instead of
// reading anything stored by the forward but x.
//
// A block reads T short rows (len neurons each, F apart), too short for the hardware
// prefetcher to get ahead of, so each thread asks for what it reads next while it computes:
// the next block's input rows (forward, and the backward's reverse pass) and this block's
// output-gradient rows (during the backward's recomputation). Measured at 16x16x65536
// float32, 2 threads, data not in cache: forward 5.9 -> 4.1-4.5 ms, backward 11.2 -> 8.7-9.0
// ms (benchmarks/RESULTS.md).
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "neurons.cuh"

namespace {
constexpr int64_t kBlock = 512;  // neurons per inner vector loop; their state lives on the stack

// Large fresh outputs are mmap'ed and paid for page by page on first touch; asking for
// transparent huge pages before the kernel writes them cuts that cost (what PyTorch's
// THP_MEM_ALLOC_ENABLE does for its own allocations). Advice only: results are unchanged.
// Only for buffers of 32 MiB and more: smaller ones are mostly memory already touched
// (snetx's buffer pool, glibc's heap), where the advice only risks compaction stalls.
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

// Outputs larger than the threads' L2 caches (this many bytes a thread) are written with
// streaming stores: a plain store first reads the line it writes (read-for-ownership), a
// third more traffic than the data. Smaller outputs stay cached for the next layer, which
// reads them right away. (Measured with the output read right after, 2 threads: streaming
// 8 and 16 MiB outputs is faster for both together, 8% and 10%.)
constexpr int64_t kStreamBytesPerThread = int64_t(2) << 20;

inline bool streamed(int64_t bytes, int threads) {
    return bytes >= kStreamBytesPerThread * (threads > 0 ? threads : 1);
}

// Asks for p[0 .. len-1] to be brought into L2 ahead of its use: a hint, with no effect on
// results; a prefetch never faults, so one past the end of an array (the last block's row
// can be shorter than len) is harmless.
template <typename S>
inline void prefetch(const S* p, int64_t len) {
    for (int64_t i = 0; i < len; i += int64_t(64 / sizeof(S))) __builtin_prefetch(p + i, 0, 2);
}

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

// Runs body(n, f0, len, next) for every block of up to `block` (<= kBlock) neurons of one
// sample n (features f0 .. f0+len-1; step t of neuron f is at (n * T + t) * F + f). Blocks
// are spread over the threads, each a contiguous run of them (static schedule), so the
// next block a thread takes is most likely the next one in order: `next` is the offset of
// its first neuron at t = 0, or -1 after the last block.
template <typename Body>
void for_each_block(int64_t N, int64_t T, int64_t F, int threads, const Body& body,
                    int64_t block = kBlock) {
    const int64_t blocks = (F + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t f0 = b * block, len = (F - f0 < block) ? F - f0 : block;
            const int64_t next = b + 1 < blocks ? n * T * F + f0 + block
                                 : n + 1 < N    ? (n + 1) * T * F
                                                : -1;
            body(n, f0, len, next);
        }
    }
}

// The arrays of one call. Optional ones are null when absent: st0 (start from rest),
// st_last (final state not wanted); in the backward g_stlast (no gradient reaches the final
// state) and g_st0 (not wanted). State-sized arrays are STATES x N x F (variable-major), k
// (the decays of every neuron) DECAYS x F, g_k (each neuron's dL/dk, summed by the caller)
// DECAYS x N x F, c the neuron's constants (v_th, v_reset, then its own).
template <typename S>
struct Call {
    const S* x;
    S* s;  // forward: spikes
    const S* gs;
    S* gx;
    const S* st0;
    S* st_last;
    const S* g_stlast;
    S* g_st0;
    const S* k;
    S* g_k;
    const S* c;
    int64_t N, T, F;
    S alpha;
    int threads;
};

// State j of neuron (n, f0 + i) in a STATES x N x F array.
inline int64_t state_at(int64_t j, int64_t n, int64_t N, int64_t F, int64_t f) {
    return (j * N + n) * F + f;
}

// Rows 0..rows-1 of a rows x M x F array (state-sized: M = N, row m = n; decays: M = 1,
// m = 0) at the block's neurons f0..f0+len-1, into or out of a block's stack arrays. A
// null source reads as zeros (rest); a null destination is not wanted.
template <typename S>
inline void gather(S (*dst)[kBlock], const S* src, int rows, int64_t m, int64_t M, int64_t F,
                   int64_t f0, int64_t len) {
    for (int j = 0; j < rows; ++j)
        for (int64_t i = 0; i < len; ++i)
            dst[j][i] = src ? src[state_at(j, m, M, F, f0 + i)] : S(0);
}

template <typename S>
inline void scatter(S* dst, S (*src)[kBlock], int rows, int64_t m, int64_t M, int64_t F,
                    int64_t f0, int64_t len) {
    if (!dst) return;
    for (int j = 0; j < rows; ++j)
        for (int64_t i = 0; i < len; ++i) dst[state_at(j, m, M, F, f0 + i)] = src[j][i];
}

template <template <typename> class NEURON, typename S, bool SOFT>
void forward(const Call<S> a) {
    typedef NEURON<S> Nr;
    const int NS = Nr::STATES, ND = Nr::DECAYS;
    advise_huge_pages(a.s, a.N * a.T * a.F * int64_t(sizeof(S)));
    const bool stream = streamed(a.N * a.T * a.F * int64_t(sizeof(S)), a.threads);
    for_each_block(a.N, a.T, a.F, a.threads, [=](int64_t n, int64_t f0, int64_t len,
                                                 int64_t next) {
        S st[NS][kBlock], k[ND][kBlock], spikes[kBlock];
        S c[4] = {a.c[0], a.c[1], a.c[2], a.c[3]};
        gather(st, a.st0, NS, n, a.N, a.F, f0, len);
        gather(k, a.k, ND, 0, 1, a.F, f0, len);
        for (int64_t t = 0; t < a.T; ++t) {
            const int64_t o = (n * a.T + t) * a.F + f0;
            if (next >= 0) prefetch(a.x + next + t * a.F, len);
            for (int64_t i = 0; i < len; ++i) {
                S v[NS], kv[ND];
                for (int j = 0; j < NS; ++j) v[j] = st[j][i];
                for (int d = 0; d < ND; ++d) kv[d] = k[d][i];
                spikes[i] = Nr::template step<SOFT>(v, a.x[o + i], kv, c);
                for (int j = 0; j < NS; ++j) st[j][i] = v[j];
            }
            stream_out(a.s + o, spikes, len, stream);
        }
        scatter(a.st_last, st, NS, n, a.N, a.F, f0, len);
        stream_fence();
    });
}

// Neurons per backward block: the block's recomputed steps (len x T x (STATES + 1) values:
// the state before each step and its input) fit in kRecompute bytes, so they are read back
// from cache; long sequences get narrower blocks (at least 16 neurons, for the vector loops).
constexpr int64_t kRecompute = int64_t(128) << 10;

template <typename S>
int64_t backward_block(int64_t T, int per_step) {
    int64_t len = kRecompute / (int64_t(sizeof(S)) * per_step * (T > 0 ? T : 1));
    len = len < 16 ? 16 : (len > kBlock ? kBlock : len);
    return len - len % 16;
}

template <template <typename> class NEURON, typename S, int SG, bool DETACH, bool SOFT>
void backward(const Call<S> a) {
    typedef NEURON<S> Nr;
    const int NS = Nr::STATES, ND = Nr::DECAYS, W = NS + 1;
    advise_huge_pages(a.gx, a.N * a.T * a.F * int64_t(sizeof(S)));
    const bool stream = streamed(a.N * a.T * a.F * int64_t(sizeof(S)), a.threads);
    for_each_block(a.N, a.T, a.F, a.threads, [=](int64_t n, int64_t f0, int64_t len,
                                                 int64_t next) {
        // step t of neuron i: buf[(t * W + j) * len + i], j < NS the state before the step,
        // j = NS its input
        thread_local std::vector<S> recomputed;
        if (recomputed.size() < size_t(a.T * W * len)) recomputed.resize(size_t(a.T * W * len));
        S* buf = recomputed.data();
        S st[NS][kBlock], k[ND][kBlock], g_st[NS][kBlock], g_k[ND][kBlock], gx[kBlock];
        S c[4] = {a.c[0], a.c[1], a.c[2], a.c[3]};
        gather(st, a.st0, NS, n, a.N, a.F, f0, len);
        gather(k, a.k, ND, 0, 1, a.F, f0, len);
        for (int64_t t = 0; t < a.T; ++t) {  // the forward again, the same expressions
            const int64_t o = (n * a.T + t) * a.F + f0;
            S* b = buf + t * W * len;
            prefetch(a.gs + o, len);  // read by the reverse pass below
            for (int64_t i = 0; i < len; ++i) {
                S v[NS], kv[ND];
                for (int j = 0; j < NS; ++j) v[j] = b[j * len + i] = st[j][i];
                for (int d = 0; d < ND; ++d) kv[d] = k[d][i];
                const S xv = b[NS * len + i] = a.x[o + i];
                Nr::template step<SOFT>(v, xv, kv, c);
                for (int j = 0; j < NS; ++j) st[j][i] = v[j];
            }
        }
        gather(g_st, a.g_stlast, NS, n, a.N, a.F, f0, len);
        gather(g_k, static_cast<const S*>(nullptr), ND, 0, 1, a.F, f0, len);  // zeros
        for (int64_t t = a.T - 1; t >= 0; --t) {
            const int64_t o = (n * a.T + t) * a.F + f0;
            const S* b = buf + t * W * len;
            if (next >= 0) prefetch(a.x + next + t * a.F, len);
            for (int64_t i = 0; i < len; ++i) {
                S pre[NS], kv[ND], gv[NS], gk[ND];
                for (int j = 0; j < NS; ++j) pre[j] = b[j * len + i], gv[j] = g_st[j][i];
                for (int d = 0; d < ND; ++d) kv[d] = k[d][i], gk[d] = g_k[d][i];
                gx[i] = Nr::template grad_step<SG, DETACH, SOFT>(pre, b[NS * len + i], kv, c,
                                                                 a.alpha, a.gs[o + i], gv, gk);
                for (int j = 0; j < NS; ++j) g_st[j][i] = gv[j];
                for (int d = 0; d < ND; ++d) g_k[d][i] = gk[d];
            }
            stream_out(a.gx + o, gx, len, stream);
        }
        scatter(a.g_st0, g_st, NS, n, a.N, a.F, f0, len);
        scatter(a.g_k, g_k, ND, n, a.N, a.F, f0, len);
        stream_fence();
    }, backward_block<S>(a.T, W));
}

template <template <typename> class NEURON, typename S>
void forward_dispatch(const Call<S>& a, int soft) {
    soft ? forward<NEURON, S, true>(a) : forward<NEURON, S, false>(a);
}

template <template <typename> class NEURON, int SG, typename S>
void backward_rule(const Call<S>& a, int detach, int soft) {
    if (detach)
        soft ? backward<NEURON, S, SG, true, true>(a) : backward<NEURON, S, SG, true, false>(a);
    else
        soft ? backward<NEURON, S, SG, false, true>(a) : backward<NEURON, S, SG, false, false>(a);
}

template <template <typename> class NEURON, typename S>
int backward_dispatch(const Call<S>& a, int sg, int detach, int soft) {
#define SNETX_CASE(ID)                                 \
    case ID:                                           \
        backward_rule<NEURON, ID, S>(a, detach, soft); \
        return 0;
    switch (sg) { SNETX_SURROGATES(SNETX_CASE) }
#undef SNETX_CASE
    return 1;  // unknown surrogate id
}
}  // namespace

// The C interface (ctypes), the same two signatures for every neuron and state type:
//   snetx_<name>_forward_<f32|f64>(x, s, st0, st_last, k, c, N, T, F, soft, threads)
//   snetx_<name>_backward_<f32|f64>(x, gs, gx, g_stlast, st0, k, g_st0, g_k, c, N, T, F,
//                                   alpha, sg, detach, soft, threads) -> 0, or 1: unknown sg
//   snetx_<name>_shape(int* states, int* decays)
#define SNETX_API_TYPE(NAME, NEURON, S, SUFFIX)                                                \
    extern "C" void snetx_##NAME##_forward_##SUFFIX(                                           \
        const S* x, S* s, const S* st0, S* st_last, const S* k, const S* c, int64_t N,         \
        int64_t T, int64_t F, int soft, int threads) {                                         \
        Call<S> a = {x, s, nullptr, nullptr, st0, st_last, nullptr, nullptr, k, nullptr, c,    \
                     N, T, F, S(0), threads};                                                  \
        forward_dispatch<NEURON, S>(a, soft);                                                  \
    }                                                                                          \
    extern "C" int snetx_##NAME##_backward_##SUFFIX(                                           \
        const S* x, const S* gs, S* gx, const S* g_stlast, const S* st0, const S* k,           \
        S* g_st0, S* g_k, const S* c, int64_t N, int64_t T, int64_t F, S alpha, int sg,        \
        int detach, int soft, int threads) {                                                   \
        Call<S> a = {x, nullptr, gs, gx, st0, nullptr, g_stlast, g_st0, k, g_k, c,             \
                     N, T, F, alpha, threads};                                                 \
        return backward_dispatch<NEURON, S>(a, sg, detach, soft);                              \
    }
#define SNETX_API_SHAPE(NAME, NEURON)                                                          \
    extern "C" void snetx_##NAME##_shape(int* states, int* decays) {                           \
        *states = NEURON<float>::STATES;                                                       \
        *decays = NEURON<float>::DECAYS;                                                       \
    }
#define SNETX_API(NAME, NEURON)                                                                \
    SNETX_API_TYPE(NAME, NEURON, float, f32)                                                   \
    SNETX_API_TYPE(NAME, NEURON, double, f64)                                                  \
    SNETX_API_SHAPE(NAME, NEURON)
#if defined(SNETX_PART_NAME)
// One part of a parallel build (snetx.snn._host_kernel): one neuron in one state type,
// compiled on its own and linked with the others; the float part also says its shape.
// (through a second macro, so that the -D names are expanded before ## pastes them)
#define SNETX_PART_TYPE_API(NAME, NEURON, S, SUFFIX) SNETX_API_TYPE(NAME, NEURON, S, SUFFIX)
#define SNETX_PART_SHAPE_API(NAME, NEURON) SNETX_API_SHAPE(NAME, NEURON)
SNETX_PART_TYPE_API(SNETX_PART_NAME, SNETX_PART_NEURON, SNETX_PART_TYPE, SNETX_PART_SUFFIX)
#if SNETX_PART_SHAPE
SNETX_PART_SHAPE_API(SNETX_PART_NAME, SNETX_PART_NEURON)
#endif
#else
SNETX_NEURONS(SNETX_API)
#endif

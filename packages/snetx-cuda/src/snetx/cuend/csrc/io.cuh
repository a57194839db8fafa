// Storage types of the CUDA driver: I/O is float, double, f16 or bf16; state is float
// (double for double I/O). No CUDA headers are needed, so NVRTC compiles this without a
// toolkit include path and the host compiler builds the same code for the CPU tests.
#pragma once
#include "neurons.cuh"

namespace snetx {

struct f16 { unsigned short bits; };   // IEEE binary16 (torch.float16)
struct bf16 { unsigned short bits; };  // bfloat16 (torch.bfloat16)

template <typename IO> struct state_of { typedef float type; };
template <> struct state_of<double> { typedef double type; };

SNETX_HD unsigned int f32_bits(float f) { union { float f; unsigned int u; } c; c.f = f; return c.u; }
SNETX_HD float f32_from_bits(unsigned int u) { union { unsigned int u; float f; } c; c.u = u; return c.f; }

SNETX_HD float load(float v) { return v; }
SNETX_HD double load(double v) { return v; }
SNETX_HD float load(bf16 v) { return f32_from_bits(((unsigned int)v.bits) << 16); }
SNETX_HD float load(f16 v) {
#if defined(__CUDA_ARCH__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#else
    _Float16 h;
    __builtin_memcpy(&h, &v.bits, 2);
    return (float)h;
#endif
}

template <typename IO> SNETX_HD IO store(typename state_of<IO>::type v);
template <> SNETX_HD float store<float>(float v) { return v; }
template <> SNETX_HD double store<double>(double v) { return v; }
template <> SNETX_HD bf16 store<bf16>(float v) {
    unsigned int u = f32_bits(v);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x40u);  // quiet NaN
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
        r.bits = (unsigned short)(u >> 16);
    }
    return r;
}
template <> SNETX_HD f16 store<f16>(float v) {
    f16 r;
#if defined(__CUDA_ARCH__)
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
#else
    _Float16 h = (_Float16)v;
    __builtin_memcpy(&r.bits, &h, 2);
#endif
    return r;
}

}  // namespace snetx

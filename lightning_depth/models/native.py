"""Small compiled C kernels for AnyNet on CPU: the SPN recurrence and a few inference steps.

What they replace, and why (single-thread CPU time at 384 x 1248, AnyNet defaults):

- the SPN column loop (:mod:`~lightning_depth.models.spn`): three PyTorch kernels per column,
  ~940 Python-level calls per pass, plus column-major copies; here one call for the forward
  (masked gates, ``(1 - g1 - g2 - g3) * x`` term, recurrence) and one for the backward (reverse
  recurrence and the four input gradients), ~10x faster. Training and inference. For inference
  a second form reads the gate network's channels-last output as it comes and normalises the
  gates in the same pass, vectorised over the channels of a pixel.
- 3x3 convolutions with few output channels (all of the U-Net's with 1 to 8, the SPN's
  projection): oneDNN vectorises over output channels, so with few it runs at a few GFLOP/s
  (the 3 -> 1 full-resolution stem: 8 ms, plus 2 ms to reorder the input to channels-last;
  the U-Net's ten others 4.1 ms, here 1.2 ms). Here a row-by-row loop vectorised over the
  image width, each input row activated once and added to every output channel, with the
  pre-activation (batch norm in eval mode and ReLU) applied to the input rows on the fly.
  Inference only.
- the sum of the depth taps of :func:`~lightning_depth.models.conv3d.conv3d_depth_major` and the
  next layer's batch norm and ReLU, in one pass over the channels-last taps: PyTorch's strided
  adds over 4-channel slices and its channels-last batch norm took ~2 ms per 3D layer at 1/4
  resolution. Inference only.
- 2x2 max pooling of the U-Net's 1- and 2-channel maps (PyTorch: ~5 ns per output). Inference
  only.
- the SPN gate network's three 16-channel 3x3 convolutions (16 -> 16, 16 -> 16, 16 -> 24) by
  Winograd's F(2x2, 3x3) algorithm (:func:`winograd3x3`), 2.25x fewer multiplications: oneDNN
  runs the direct form near this CPU's peak already, so fewer operations are the only way
  left to make them faster (0.69 -> 0.58 ms and 1.35 -> 0.76 ms at 96 x 312 on 2 cores).
  Inference only.
- bilinear resizes (the stages' upsampling to full resolution, 1 channel): PyTorch runs them on
  one thread; here split over the threads, each input row interpolated along the width once
  for all the output rows that use it.

Inference-only kernels run where :func:`inference_kernels` allows (eager, no gradient, CPU
float32/float64, no autocast). The work is split over ``torch.get_num_threads()`` threads of
PyTorch's own OpenMP pool: the library is compiled with ``-fopenmp`` and binds to the
``libgomp`` PyTorch has already loaded (same soname), so its parallel regions start on threads
that are awake between PyTorch's operators and never compete with them (:func:`uses_openmp`).
Where the compiler has no OpenMP, and in a forked child (whose inherited OpenMP pool has no
threads), Python threads split the work instead (ctypes releases the GIL during each call).
Measured at 384 x 1248 on 2 cores: 3 stages + SPN 37 ms with Python threads, 29 ms on the
OpenMP pool (``benchmarks/bench_stereo.py``).

Each kernel performs the operations of the PyTorch form it replaces; where PyTorch (oneDNN)
sums in an unspecified order, results agree to float rounding (tests compare at 1e-6 relative).

Why plain C through :mod:`ctypes` and not a ``torch.utils.cpp_extension`` module: the kernels
need nothing from PyTorch but data pointers, and without the PyTorch headers they compile in
about a second, where a ``load_inline`` extension took ~35 s on a 2-core machine, at the first
use in every fresh environment (each CI run). ctypes releases the GIL during the call.

Build: at the first use in a process, with the system C compiler (``cc``, ``gcc`` or
``clang``), into ``<torch extensions dir>/lightning_depth_native/`` (``$TORCH_EXTENSIONS_DIR``,
else ``~/.cache/torch_extensions``), or a fresh temporary folder if that cannot be written. The
file name holds a hash of the source, compiler, flags and CPU capability, so a change rebuilds
and later processes reuse the file. Nothing is written into the source tree. Where no compiler
works, :func:`native_kernels` says why, and the callers use their PyTorch forms.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from lightning_depth.models.tracing import capture_mode

__all__ = [
    "NativeKernels",
    "batch_norm_affine",
    "build_native_kernels",
    "FEW_CHANNELS",
    "conv3x3",
    "conv3x3_kernels",
    "enabled",
    "inference_kernels",
    "kernels_enabled",
    "max_pool2x2",
    "native_kernels",
    "resize_bilinear",
    "retain_freed_memory",
    "spn_backward",
    "spn_forward",
    "spn_forward_normalized",
    "supports",
    "tap_sum",
    "uses_openmp",
    "winograd3x3",
    "winograd_kernels",
    "winograd_weights",
    "WINOGRAD_IN_CHANNELS",
    "WINOGRAD_OUT_CHANNELS",
]

# Each kernel is a macro instantiated for float and double.
_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* 1 if built with OpenMP: the kernels then split [lo, hi) over `threads` threads of the
   process's OpenMP pool (PyTorch's own, the same libgomp), else Python splits the range. */
int64_t native_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Run CALL (an int expression of a and b, 0 on success) over [lo, hi) split in `threads`
   contiguous parts, part k on thread k; the statuses are OR-ed into `status`. */
#ifdef _OPENMP
#define SPLIT_RANGE(status, threads, lo, hi, CALL)                                           \
    if ((threads) > 1 && (hi) - (lo) > 1) {                                                  \
        const int64_t n_ = (threads) < (hi) - (lo) ? (threads) : (hi) - (lo);                \
        _Pragma("omp parallel num_threads(n_) reduction(|:status)")                          \
        {                                                                                    \
            const int64_t k_ = omp_get_thread_num(), t_ = omp_get_num_threads();             \
            const int64_t a = (lo) + ((hi) - (lo)) * k_ / t_;                                \
            const int64_t b = (lo) + ((hi) - (lo)) * (k_ + 1) / t_;                          \
            if (a < b) status |= (CALL);                                                     \
        }                                                                                    \
    } else {                                                                                 \
        const int64_t a = (lo), b = (hi);                                                    \
        status |= (CALL);                                                                    \
    }
#else
#define SPLIT_RANGE(status, threads, lo, hi, CALL)                                           \
    { const int64_t a = (lo), b = (hi); status |= (CALL); }
#endif

/* A parallel region over n_ threads (a variable in scope), its barrier, the thread's number
   and the team's size; one thread without OpenMP. */
#ifdef _OPENMP
#define OMP_PARALLEL _Pragma("omp parallel num_threads(n_) if(n_ > 1)")
#define OMP_BARRIER _Pragma("omp barrier")
#define THREAD_ID omp_get_thread_num()
#define THREAD_COUNT omp_get_num_threads()
#else
#define OMP_PARALLEL
#define OMP_BARRIER
#define THREAD_ID 0
#define THREAD_COUNT 1
#endif

/* 32-byte vectors (GCC/clang vector extensions: AVX registers where built with AVX, pairs of
   128-bit ones elsewhere): VL_S values each; integer twins for bit operations. */
typedef float vec_f32 __attribute__((vector_size(32)));
typedef double vec_f64 __attribute__((vector_size(32)));
typedef int32_t ivec_f32 __attribute__((vector_size(32)));
typedef int64_t ivec_f64 __attribute__((vector_size(32)));
enum { VL_f32 = 8, VL_f64 = 4 };
static inline vec_f32 vload_f32(const float* p) { vec_f32 v; memcpy(&v, p, sizeof v); return v; }
static inline vec_f64 vload_f64(const double* p) { vec_f64 v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore_f32(float* p, vec_f32 v) { memcpy(p, &v, sizeof v); }
static inline void vstore_f64(double* p, vec_f64 v) { memcpy(p, &v, sizeof v); }
/* every lane v (not zero + v, which the compiler must compute: -0.0 + 0.0 is +0.0) */
static inline vec_f32 vsplat_f32(float v) { vec_f32 r = {v, v, v, v, v, v, v, v}; return r; }
static inline vec_f64 vsplat_f64(double v) { vec_f64 r = {v, v, v, v}; return r; }

/* SPN, left to right. Plane p (a (b, c) pair) is a contiguous H x W block. Same operations in
   the same order as spn.py's PyTorch form: base = ((1 - a1) - a2) - a3) * x with the masked
   gates, then + a2 * left, + a1 * upper left, + a3 * lower left. */
#define SPN_KERNELS(T, S)                                                                    \
static int spn_forward_planes_##S(const T* x, const T* g1, const T* g2, const T* g3,         \
                                 T* out, int64_t H, int64_t W, int64_t p0, int64_t p1) {     \
    for (int64_t p = p0; p < p1; ++p) {                                                      \
        const int64_t o = p * H * W;                                                         \
        for (int64_t r = 0; r < H; ++r) out[o + r * W] = x[o + r * W];                       \
        for (int64_t w = 1; w < W; ++w) {                                                    \
            for (int64_t r = 0; r < H; ++r) {                                                \
                const int64_t i = o + r * W + w;                                             \
                const T a1 = r > 0 ? g1[i] : (T)0;                                           \
                const T a2 = g2[i];                                                          \
                const T a3 = r < H - 1 ? g3[i] : (T)0;                                       \
                T v = (((T)1 - a1) - a2 - a3) * x[i];                                        \
                v = v + a2 * out[i - 1];                                                     \
                if (r > 0) v = v + a1 * out[i - W - 1];                                      \
                if (r < H - 1) v = v + a3 * out[i + W - 1];                                  \
                out[i] = v;                                                                  \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
/* Planes lo <= p < hi over `threads` threads. */                                            \
void spn_forward_##S(const T* x, const T* g1, const T* g2, const T* g3, T* out,              \
                     int64_t H, int64_t W, int64_t lo, int64_t hi, int64_t threads) {        \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, spn_forward_planes_##S(x, g1, g2, g3, out, H, W, a, b)) \
    (void)status;                                                                            \
}                                                                                            \
                                                                                             \
/* Inference on channels-last tensors, with SPNRefinement's gate normalisation: x and out    \
   (B, H, W, C), gates (B, H, W, 3C) holding g1, g2, g3 (the gate network's output, as it    \
   comes), a_k = g_k / (|g1| + |g2| + |g3| + 1e-8). The C channels of a pixel are contiguous: \
   vectors of VL_S channels where C is a multiple of VL_S, scalar steps otherwise (the same  \
   operations either way: |e| by clearing the sign bit adds up as e < 0 ? -e : e does).      \
   Rows r0 <= r < r1 of column w. */                                                         \
static void spn_cl_column_##S(const T* xb, const T* gb, T* ob, int64_t C, int64_t H,         \
                              int64_t W, int64_t w, int64_t r0, int64_t r1) {                \
    const int64_t vectors = C % VL_##S == 0 ? C / VL_##S : 0;                                \
    const vec_##S zero = {0}, one = zero + (T)1, eps = zero + (T)1e-8;                       \
    const ivec_##S sign = (ivec_##S)(-zero); /* -0.0: the sign bits */                       \
    for (int64_t r = r0; r < r1; ++r) {                                                      \
        const int64_t pix = r * W + w;                                                       \
        const T* restrict xp = xb + pix * C;                                                 \
        const T* restrict g = gb + pix * 3 * C;                                              \
        T* restrict op = ob + pix * C;                                                       \
        if (w == 0) {                                                                        \
            for (int64_t c = 0; c < C; ++c) op[c] = xp[c];                                   \
            continue;                                                                        \
        }                                                                                    \
        const T* restrict left = ob + (pix - 1) * C;                                         \
        const T* restrict up = ob + (pix - 1 - W) * C;                                       \
        const T* restrict dn = ob + (pix - 1 + W) * C;                                       \
        const int top = r == 0, bottom = r == H - 1;                                         \
        for (int64_t v = 0; v < vectors; ++v) {                                              \
            const int64_t c = v * VL_##S;                                                    \
            const vec_##S e1 = vload_##S(g + c), e2 = vload_##S(g + C + c);                  \
            const vec_##S e3 = vload_##S(g + 2 * C + c);                                     \
            const vec_##S n = (vec_##S)((ivec_##S)e1 & ~sign) + (vec_##S)((ivec_##S)e2 & ~sign) \
                              + (vec_##S)((ivec_##S)e3 & ~sign) + eps;                       \
            const vec_##S a1 = top ? zero : e1 / n, a2 = e2 / n;                             \
            const vec_##S a3 = bottom ? zero : e3 / n;                                       \
            vec_##S s = (((one - a1) - a2) - a3) * vload_##S(xp + c);                        \
            s = s + a2 * vload_##S(left + c);                                                \
            if (!top) s = s + a1 * vload_##S(up + c);                                        \
            if (!bottom) s = s + a3 * vload_##S(dn + c);                                     \
            vstore_##S(op + c, s);                                                           \
        }                                                                                    \
        for (int64_t c = vectors * VL_##S; c < C; ++c) {                                     \
            const T e1 = g[c], e2 = g[C + c], e3 = g[2 * C + c];                             \
            const T n = (e1 < 0 ? -e1 : e1) + (e2 < 0 ? -e2 : e2)                            \
                        + (e3 < 0 ? -e3 : e3) + (T)1e-8;                                     \
            const T a1 = top ? (T)0 : e1 / n;                                                \
            const T a2 = e2 / n;                                                             \
            const T a3 = bottom ? (T)0 : e3 / n;                                             \
            T v = (((T)1 - a1) - a2 - a3) * xp[c];                                           \
            v = v + a2 * left[c];                                                            \
            if (!top) v = v + a1 * up[c];                                                    \
            if (!bottom) v = v + a3 * dn[c];                                                 \
            op[c] = v;                                                                       \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
                                                                                             \
/* Columns left to right; within a column the rows are split over `threads` threads, which   \
   meet at a barrier before the next column (it reads the rows around each thread's band). */ \
void spn_forward_cl_##S(const T* x, const T* gates, T* out, int64_t B, int64_t C,            \
                        int64_t H, int64_t W, int64_t threads) {                             \
    const int64_t n_ = threads < H ? threads : H;                                            \
    OMP_PARALLEL                                                                             \
    {                                                                                        \
        const int64_t k = THREAD_ID, t = THREAD_COUNT;                                       \
        const int64_t r0 = H * k / t, r1 = H * (k + 1) / t;                                  \
        for (int64_t b = 0; b < B; ++b) {                                                    \
            for (int64_t w = 0; w < W; ++w) {                                                \
                spn_cl_column_##S(x + b * H * W * C, gates + b * H * W * 3 * C,              \
                                  out + b * H * W * C, C, H, W, w, r0, r1);                  \
                OMP_BARRIER                                                                  \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    (void)n_;                                                                                \
}                                                                                            \
                                                                                             \
static int spn_backward_planes_##S(const T* x, const T* g1, const T* g2, const T* g3,        \
                                  const T* h, const T* grad, T* dh, T* gx, T* gg1, T* gg2,   \
                                  T* gg3, int64_t H, int64_t W, int64_t p0, int64_t p1) {    \
    for (int64_t p = p0; p < p1; ++p) {                                                      \
        const int64_t o = p * H * W;                                                         \
        /* dh[w] = grad[w] + the gates of column w + 1 times dh[w + 1] (right to left). */   \
        for (int64_t r = 0; r < H; ++r) dh[o + r * W + W - 1] = grad[o + r * W + W - 1];     \
        for (int64_t w = W - 2; w >= 0; --w) {                                               \
            for (int64_t r = 0; r < H; ++r) {                                                \
                const int64_t i = o + r * W + w;                                             \
                T v = grad[i];                                                               \
                v = v + g2[i + 1] * dh[i + 1];                                               \
                if (r < H - 1) v = v + g1[i + W + 1] * dh[i + W + 1];                        \
                if (r > 0) v = v + g3[i - W + 1] * dh[i - W + 1];                            \
                dh[i] = v;                                                                   \
            }                                                                                \
        }                                                                                    \
        /* d out / d x = 1 - a1 - a2 - a3; d out / d g = neighbour - x (0 where masked). */  \
        for (int64_t r = 0; r < H; ++r) {                                                    \
            for (int64_t w = 0; w < W; ++w) {                                                \
                const int64_t i = o + r * W + w;                                             \
                const T d = dh[i];                                                           \
                if (w == 0) {                                                                \
                    gx[i] = d;                                                               \
                    gg1[i] = 0; gg2[i] = 0; gg3[i] = 0;                                      \
                    continue;                                                                \
                }                                                                            \
                const T a1 = r > 0 ? g1[i] : (T)0;                                           \
                const T a3 = r < H - 1 ? g3[i] : (T)0;                                       \
                gx[i] = (((T)1 - a1) - g2[i] - a3) * d;                                      \
                gg1[i] = r > 0 ? (-x[i] + h[i - W - 1]) * d : (T)0;                          \
                gg2[i] = (h[i - 1] + -x[i]) * d;                                             \
                gg3[i] = r < H - 1 ? (-x[i] + h[i + W - 1]) * d : (T)0;                      \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
void spn_backward_##S(const T* x, const T* g1, const T* g2, const T* g3, const T* h,         \
                      const T* grad, T* dh, T* gx, T* gg1, T* gg2, T* gg3,                   \
                      int64_t H, int64_t W, int64_t lo, int64_t hi, int64_t threads) {       \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, spn_backward_planes_##S(x, g1, g2, g3, h, grad, dh, \
                                                                 gx, gg1, gg2, gg3, H, W, a, b)) \
    (void)status;                                                                            \
}

/* 3x3 convolution, zero padding 1, stride s, C input channels, O output channels (few):
   out[n, o, y, x] = sum_{ky, c, kx} weight[o, c, ky, kx] * a(in[n, c, s y + ky - 1, s x + kx - 1])
                     (+ bias[o]), with a(v) = max(v * scale[c] + shift[c], 0) if scale is given
   (the pre-activation: eval batch norm, ReLU), else v. Each input row is activated once into a
   zero-padded buffer and added to the (up to 3) rows of each output channel it reaches, one
   vectorisable pass over the output row each; the output rows are the accumulators. Computes
   the output rows y0 <= y < y1 (of every image and channel), so that threads can share the
   work. */
#define CONV_KERNEL(T, S)                                                                    \
static int conv3x3_rows_##S(const T* in, const T* weight, const T* bias, const T* scale,     \
                           const T* shift, T* out, int64_t N, int64_t C, int64_t O,          \
                           int64_t H, int64_t W, int64_t s, int64_t Ho, int64_t Wo,          \
                           int64_t y0, int64_t y1) {                                         \
    T* buf = (T*)malloc(sizeof(T) * (size_t)(W + 2 + s));                                    \
    if (!buf) return 1;                                                                      \
    for (int64_t i = 0; i < W + 2 + s; ++i) buf[i] = 0;                                      \
    for (int64_t n = 0; n < N; ++n) {                                                        \
        for (int64_t o = 0; o < O; ++o) {                                                    \
            T* op = out + (n * O + o) * Ho * Wo;                                             \
            for (int64_t i = y0 * Wo; i < y1 * Wo; ++i) op[i] = 0;                           \
        }                                                                                    \
        const int64_t lo = s * y0 - 1 < 0 ? 0 : s * y0 - 1;                                  \
        const int64_t hi = s * (y1 - 1) + 1 < H - 1 ? s * (y1 - 1) + 1 : H - 1;              \
        for (int64_t yi = lo; yi <= hi; ++yi) {                                              \
            for (int64_t c = 0; c < C; ++c) {                                                \
                const T* row = in + ((n * C + c) * H + yi) * W;                              \
                if (scale) {                                                                 \
                    const T a = scale[c], b = shift[c];                                      \
                    for (int64_t x = 0; x < W; ++x) {                                        \
                        const T v = row[x] * a + b;                                          \
                        buf[x + 1] = v < 0 ? (T)0 : v;                                       \
                    }                                                                        \
                } else {                                                                     \
                    for (int64_t x = 0; x < W; ++x) buf[x + 1] = row[x];                     \
                }                                                                            \
                for (int64_t ky = 0; ky < 3; ++ky) {                                         \
                    const int64_t num = yi + 1 - ky;                                         \
                    if (num < 0 || num % s) continue;                                        \
                    const int64_t yo = num / s;                                              \
                    if (yo < y0 || yo >= y1) continue;                                       \
                    for (int64_t o = 0; o < O; ++o) {                                        \
                        const T* k = weight + ((o * C + c) * 3 + ky) * 3;                    \
                        const T k0 = k[0], k1 = k[1], k2 = k[2];                             \
                        T* restrict acc = out + ((n * O + o) * Ho + yo) * Wo;                \
                        const T* restrict bb = buf;                                          \
                        if (s == 1) {                                                        \
                            for (int64_t x = 0; x < Wo; ++x)                                 \
                                acc[x] = acc[x] + k0 * bb[x] + k1 * bb[x + 1] + k2 * bb[x + 2]; \
                        } else {                                                             \
                            for (int64_t x = 0; x < Wo; ++x) {                               \
                                const T* b3 = bb + s * x;                                    \
                                acc[x] = acc[x] + k0 * b3[0] + k1 * b3[1] + k2 * b3[2];      \
                            }                                                                \
                        }                                                                    \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        if (bias) {                                                                          \
            for (int64_t o = 0; o < O; ++o) {                                                \
                const T b0 = bias[o];                                                        \
                T* op = out + (n * O + o) * Ho * Wo;                                         \
                for (int64_t i = y0 * Wo; i < y1 * Wo; ++i) op[i] = op[i] + b0;              \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    free(buf);                                                                               \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
/* Output rows lo <= y < hi over `threads` threads; 1 if a row buffer could not be had. */   \
int conv3x3_##S(const T* in, const T* weight, const T* bias, const T* scale, const T* shift, \
                T* out, int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int64_t s,    \
                int64_t Ho, int64_t Wo, int64_t lo, int64_t hi, int64_t threads) {           \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, conv3x3_rows_##S(in, weight, bias, scale, shift,    \
                                                          out, N, C, O, H, W, s, Ho, Wo, a,  \
                                                          b))                                \
    return status;                                                                           \
}

/* The depth-tap sum of conv3d_depth_major on channels-last taps: taps[i, p, k * O + o] (slice
   i = b * D + d, pixel p, tap k), out[i, p, o] = (taps[i, tap 1] + taps[i - 1, tap 0])
   + taps[i + 1, tap 2] in that order (as _SumDepthTaps; a missing neighbour slice adds an exact
   0), then optionally max(v * scale[o] + shift[o], 0). Pixels p0 <= p < p1 of every slice. One
   branch-free loop over the O channels of a pixel (O a constant for AnyNet's 1 and 4, where
   that is faster). */
#define TAP_PIXELS(T, OC)                                                                    \
    for (int64_t p = p0; p < p1; ++p) {                                                      \
        const T* restrict tp = t + p * 3 * (OC) + (OC);                                      \
        const T* restrict u = u0 + p * us;                                                   \
        const T* restrict v = v0 + p * vs;                                                   \
        T* restrict op = o + p * (OC);                                                       \
        if (scale) {                                                                         \
            for (int64_t c = 0; c < (OC); ++c) {                                             \
                const T a = ((tp[c] + u[c]) + v[c]) * scale[c] + shift[c];                   \
                op[c] = a < 0 ? (T)0 : a;                                                    \
            }                                                                                \
        } else {                                                                             \
            for (int64_t c = 0; c < (OC); ++c) op[c] = (tp[c] + u[c]) + v[c];                \
        }                                                                                    \
    }

#define TAP_KERNEL(T, S)                                                                     \
static int tap_sum_pixels_##S(const T* taps, T* out, const T* scale, const T* shift,         \
                             const T* zeros, int64_t slices, int64_t D, int64_t P,           \
                             int64_t O, int64_t p0, int64_t p1) {                            \
    for (int64_t i = 0; i < slices; ++i) {                                                   \
        const int64_t d = i % D;                                                             \
        const T* t = taps + i * P * 3 * O;                                                   \
        /* tap 0 of the slice before, tap 2 of the one after; zeros (stride 0) if none */    \
        const T* u0 = d > 0 ? t - P * 3 * O : zeros;                                         \
        const int64_t us = d > 0 ? 3 * O : 0;                                                \
        const T* v0 = d < D - 1 ? t + P * 3 * O + 2 * O : zeros;                             \
        const int64_t vs = d < D - 1 ? 3 * O : 0;                                            \
        T* o = out + i * P * O;                                                              \
        if (O == 4) {                                                                        \
            TAP_PIXELS(T, 4)                                                                 \
        } else if (O == 1) {                                                                 \
            TAP_PIXELS(T, 1)                                                                 \
        } else {                                                                             \
            TAP_PIXELS(T, O)                                                                 \
        }                                                                                    \
    }                                                                                        \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
/* Pixels lo <= p < hi of every slice over `threads` threads. */                             \
void tap_sum_##S(const T* taps, T* out, const T* scale, const T* shift, const T* zeros,      \
                 int64_t slices, int64_t D, int64_t P, int64_t O, int64_t lo, int64_t hi,    \
                 int64_t threads) {                                                          \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, tap_sum_pixels_##S(taps, out, scale, shift, zeros,  \
                                                            slices, D, P, O, a, b))          \
    (void)status;                                                                            \
}

/* 2x2 max pooling, stride 2, of contiguous H x W planes (floor sizes). NaN propagates, as in
   PyTorch's kernel: a value replaces the maximum if it is larger or NaN. */
#define POOL_KERNEL(T, S)                                                                    \
static int max_pool_planes_##S(const T* in, T* restrict out, int64_t H, int64_t W,           \
                               int64_t p0, int64_t p1) {                                     \
    const int64_t Ho = H / 2, Wo = W / 2;                                                    \
    for (int64_t p = p0; p < p1; ++p) {                                                      \
        for (int64_t y = 0; y < Ho; ++y) {                                                   \
            const T* r0 = in + (p * H + 2 * y) * W;                                          \
            const T* r1 = r0 + W;                                                            \
            T* o = out + (p * Ho + y) * Wo;                                                  \
            for (int64_t x = 0; x < Wo; ++x) {                                               \
                T m = r0[2 * x];                                                             \
                const T v1 = r0[2 * x + 1], v2 = r1[2 * x], v3 = r1[2 * x + 1];              \
                if (v1 > m || v1 != v1) m = v1;                                              \
                if (v2 > m || v2 != v2) m = v2;                                              \
                if (v3 > m || v3 != v3) m = v3;                                              \
                o[x] = m;                                                                    \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
/* Planes lo <= p < hi over `threads` threads. */                                            \
void max_pool2x2_##S(const T* in, T* out, int64_t H, int64_t W, int64_t lo, int64_t hi,      \
                     int64_t threads) {                                                      \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, max_pool_planes_##S(in, out, H, W, a, b))           \
    (void)status;                                                                            \
}

/* Bilinear resize of contiguous h x w planes to H x W (F.interpolate(..., mode="bilinear"),
   no antialiasing), output rows y0 <= y < y1. Source positions and weights as PyTorch's CPU
   kernel computes them (area_pixel_compute_source_index, guard_index_and_lambda, in T), and
   the same products and sums: (x00 w0 + x01 w1) h0 + (x10 w0 + x11 w1) h1. */
#define RESIZE_KERNEL(T, S)                                                                  \
static void resize_index_##S(int64_t in, int64_t out, int64_t align, int64_t i,              \
                             int64_t* i0, int64_t* i1, T* l0, T* l1) {                       \
    if (in == out) { *i0 = i; *i1 = i; *l0 = (T)1; *l1 = (T)0; return; }                     \
    const T scale = align ? (out > 1 ? (T)(in - 1) / (T)(out - 1) : (T)0) : (T)in / (T)out;  \
    T real = align ? scale * (T)i : scale * ((T)i + (T)0.5) - (T)0.5;                        \
    if (real < 0) real = 0;                                                                  \
    int64_t idx = (int64_t)real;                                                             \
    if (idx > in - 1) idx = in - 1;                                                          \
    T lambda = real - (T)idx;                                                                \
    lambda = lambda < 0 ? (T)0 : (lambda > 1 ? (T)1 : lambda);                               \
    *i0 = idx;                                                                               \
    *i1 = idx + (idx < in - 1 ? 1 : 0);                                                      \
    *l1 = lambda;                                                                            \
    *l0 = (T)1 - lambda;                                                                     \
}                                                                                            \
                                                                                             \
static int resize_rows_##S(const T* in, T* out, int64_t planes, int64_t h, int64_t w,        \
                          int64_t H, int64_t W, int64_t align, int64_t y0, int64_t y1) {     \
    int32_t* xi = (int32_t*)malloc(sizeof(int32_t) * (size_t)(2 * W));                       \
    /* column weights, then the rows r0 and r1 interpolated along the width: an input row    \
       serves several output rows when upsampling, so it is interpolated once for them */    \
    T* xl = (T*)malloc(sizeof(T) * (size_t)(4 * W));                                         \
    if (!xi || !xl) { free(xi); free(xl); return 1; }                                        \
    T* rows[2] = {xl + 2 * W, xl + 3 * W};                                                   \
    for (int64_t x = 0; x < W; ++x) {                                                        \
        int64_t c0, c1;                                                                      \
        resize_index_##S(w, W, align, x, &c0, &c1, xl + x, xl + W + x);                      \
        xi[x] = (int32_t)c0; /* int32 indices: AVX2 gathers vectorise the loop below */      \
        xi[W + x] = (int32_t)c1;                                                             \
    }                                                                                        \
    for (int64_t p = 0; p < planes; ++p) {                                                   \
        int64_t held[2] = {-1, -1}; /* the input rows in rows[0] and rows[1] */              \
        for (int64_t y = y0; y < y1; ++y) {                                                  \
            int64_t r[2];                                                                    \
            int slot[2];                                                                     \
            T h0, h1;                                                                        \
            resize_index_##S(h, H, align, y, &r[0], &r[1], &h0, &h1);                        \
            for (int k = 0; k < 2; ++k) {                                                    \
                if (held[0] == r[k] || held[1] == r[k]) {                                    \
                    slot[k] = held[0] == r[k] ? 0 : 1;                                       \
                    continue;                                                                \
                }                                                                            \
                /* the slot that holds neither row needed: for r[0] not r[1]'s, for r[1] not \
                   the one r[0] is in */                                                     \
                slot[k] = k == 0 ? (held[0] == r[1] ? 1 : 0) : 1 - slot[0];                  \
                const T* a = in + (p * h + r[k]) * w;                                        \
                T* restrict o = rows[slot[k]];                                               \
                for (int64_t x = 0; x < W; ++x)                                              \
                    o[x] = a[xi[x]] * xl[x] + a[xi[W + x]] * xl[W + x];                      \
                held[slot[k]] = r[k];                                                        \
            }                                                                                \
            const T* restrict a = rows[slot[0]];                                             \
            const T* restrict b = rows[slot[1]];                                             \
            T* restrict o = out + (p * H + y) * W;                                           \
            for (int64_t x = 0; x < W; ++x) o[x] = a[x] * h0 + b[x] * h1;                    \
        }                                                                                    \
    }                                                                                        \
    free(xi);                                                                                \
    free(xl);                                                                                \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
/* Output rows lo <= y < hi over `threads` threads; 1 if the column tables could not be had. */ \
int resize_bilinear_##S(const T* in, T* out, int64_t planes, int64_t h, int64_t w,           \
                        int64_t H, int64_t W, int64_t align, int64_t lo, int64_t hi,         \
                        int64_t threads) {                                                   \
    int status = 0;                                                                          \
    SPLIT_RANGE(status, threads, lo, hi, resize_rows_##S(in, out, planes, h, w, H, W, align, \
                                                         a, b))                              \
    return status;                                                                           \
}

SPN_KERNELS(float, f32)
SPN_KERNELS(double, f64)
CONV_KERNEL(float, f32)
CONV_KERNEL(double, f64)
TAP_KERNEL(float, f32)
TAP_KERNEL(double, f64)
POOL_KERNEL(float, f32)
POOL_KERNEL(double, f64)
RESIZE_KERNEL(float, f32)
RESIZE_KERNEL(double, f64)

/* Winograd F(2x2, 3x3) convolution, stride 1, padding 1, for the SPN's gate network: NHWC
   input of WG_CIN = 16 channels (ReLU applied on loading if relu), weights transformed to
   u = (16 positions, WG_CIN, cout) by the caller (G g G^T), NHWC output of cout = 16 or 24
   channels. Each 2x2 output tile: input transform B^T d B (vectorised over the channels),
   16 products of (1 x WG_CIN) by (WG_CIN x cout) summed in the order of the input channels,
   output transform A^T m A. WG_TILES tiles side by side share each weight load. Tile rows
   (over the batch) lo <= t < hi. */
#define WG_CIN 16
#define WG_TILES 4
#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#define WG_MADD_f32(acc, a, b) ((vec_f32)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(acc)))
#define WG_MADD_f64(acc, a, b) ((vec_f64)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(acc)))
#else
#define WG_MADD_f32(acc, a, b) ((acc) + (a) * (b))
#define WG_MADD_f64(acc, a, b) ((acc) + (a) * (b))
#endif

/* Tile rows t0 <= t < t1 of the batch (t = image * ceil(h / 2) + tile row) for COUT outputs. */
#define WINOGRAD_ROWS(T, S, COUT)                                                            \
static int winograd_rows_##S##_##COUT(const T* x, const T* u, T* y, int64_t h, int64_t w,    \
                                      int64_t relu, int64_t t0, int64_t t1) {                \
    enum { NO = COUT / VL_##S };                                                             \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;                                        \
    const vec_##S zero = {0};                                                                \
    T v[WG_TILES][16][WG_CIN];                                                               \
    vec_##S m[WG_TILES][16][NO];                                                             \
    for (int64_t t = t0; t < t1; ++t) {                                                      \
        const int64_t n = t / th, ty = t % th;                                               \
        const T* xn = x + n * h * w * WG_CIN;                                                \
        T* yn = y + n * h * w * COUT;                                                        \
        for (int64_t tx0 = 0; tx0 < tw; tx0 += WG_TILES) {                                   \
            for (int k = 0; k < WG_TILES; ++k)                                               \
                wg_input_##S(xn, h, w, 2 * ty - 1, 2 * (tx0 + k) - 1, relu, v[k]);           \
            for (int p = 0; p < 16; ++p) {                                                   \
                vec_##S acc[WG_TILES][NO];                                                   \
                for (int k = 0; k < WG_TILES; ++k)                                           \
                    for (int o = 0; o < NO; ++o) acc[k][o] = zero;                           \
                const T* up = u + p * WG_CIN * COUT;                                         \
                for (int c = 0; c < WG_CIN; ++c) {                                           \
                    vec_##S uu[NO];                                                          \
                    for (int o = 0; o < NO; ++o) uu[o] = vload_##S(up + c * COUT + o * VL_##S); \
                    for (int k = 0; k < WG_TILES; ++k) {                                     \
                        const vec_##S vv = vsplat_##S(v[k][p][c]);                           \
                        for (int o = 0; o < NO; ++o) acc[k][o] = WG_MADD_##S(acc[k][o], vv, uu[o]); \
                    }                                                                        \
                }                                                                            \
                for (int k = 0; k < WG_TILES; ++k)                                           \
                    for (int o = 0; o < NO; ++o) m[k][p][o] = acc[k][o];                     \
            }                                                                                \
            for (int k = 0; k < WG_TILES && tx0 + k < tw; ++k) {                             \
                const int64_t tx = tx0 + k;                                                  \
                for (int o = 0; o < NO; ++o) {                                               \
                    vec_##S s[2][4], out[2][2];                                              \
                    for (int j = 0; j < 4; ++j) {                                            \
                        s[0][j] = m[k][j][o] + m[k][4 + j][o] + m[k][8 + j][o];              \
                        s[1][j] = m[k][4 + j][o] - m[k][8 + j][o] - m[k][12 + j][o];         \
                    }                                                                        \
                    for (int i = 0; i < 2; ++i) {                                            \
                        out[i][0] = s[i][0] + s[i][1] + s[i][2];                             \
                        out[i][1] = s[i][1] - s[i][2] - s[i][3];                             \
                    }                                                                        \
                    for (int i = 0; i < 2 && 2 * ty + i < h; ++i)                            \
                        for (int j = 0; j < 2 && 2 * tx + j < w; ++j)                        \
                            vstore_##S(yn + ((2 * ty + i) * w + 2 * tx + j) * COUT           \
                                         + o * VL_##S, out[i][j]);                           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return 0;                                                                                \
}

#define WINOGRAD_KERNEL(T, S)                                                                \
enum { WG_NB_##S = WG_CIN / VL_##S };                                                        \
/* v[16][WG_CIN]: B^T d B of the 4 x 4 x WG_CIN patch whose top-left pixel is (r0, c0). */   \
static void wg_input_##S(const T* x, int64_t h, int64_t w, int64_t r0, int64_t c0,           \
                         int64_t relu, T v[16][WG_CIN]) {                                    \
    const vec_##S zero = {0};                                                                \
    for (int b = 0; b < WG_NB_##S; ++b) {                                                    \
        vec_##S d[4][4], t[4][4];                                                            \
        for (int i = 0; i < 4; ++i)                                                          \
            for (int j = 0; j < 4; ++j) {                                                    \
                const int64_t r = r0 + i, c = c0 + j;                                        \
                d[i][j] = zero;                                                              \
                if (r >= 0 && r < h && c >= 0 && c < w) {                                    \
                    d[i][j] = vload_##S(x + (r * w + c) * WG_CIN + b * VL_##S);              \
                    if (relu) /* max(x, 0), NaN kept as torch.relu keeps it */               \
                        d[i][j] = (vec_##S)((ivec_##S)d[i][j] &                              \
                                  ((d[i][j] > zero) | (d[i][j] != d[i][j])));                \
                }                                                                            \
            }                                                                                \
        for (int j = 0; j < 4; ++j) {                                                        \
            t[0][j] = d[0][j] - d[2][j];                                                     \
            t[1][j] = d[1][j] + d[2][j];                                                     \
            t[2][j] = d[2][j] - d[1][j];                                                     \
            t[3][j] = d[1][j] - d[3][j];                                                     \
        }                                                                                    \
        for (int i = 0; i < 4; ++i) {                                                        \
            vstore_##S(v[4 * i + 0] + b * VL_##S, t[i][0] - t[i][2]);                        \
            vstore_##S(v[4 * i + 1] + b * VL_##S, t[i][1] + t[i][2]);                        \
            vstore_##S(v[4 * i + 2] + b * VL_##S, t[i][2] - t[i][1]);                        \
            vstore_##S(v[4 * i + 3] + b * VL_##S, t[i][1] - t[i][3]);                        \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
WINOGRAD_ROWS(T, S, 16)                                                                      \
WINOGRAD_ROWS(T, S, 24)                                                                      \
int winograd3x3_##S(const T* x, const T* u, T* y, int64_t h, int64_t w, int64_t cout,        \
                    int64_t relu, int64_t lo, int64_t hi, int64_t threads) {                 \
    int status = 0;                                                                          \
    if (cout == 16) {                                                                        \
        SPLIT_RANGE(status, threads, lo, hi, winograd_rows_##S##_16(x, u, y, h, w, relu, a, b)) \
    } else if (cout == 24) {                                                                 \
        SPLIT_RANGE(status, threads, lo, hi, winograd_rows_##S##_24(x, u, y, h, w, relu, a, b)) \
    } else {                                                                                 \
        status = 1;                                                                          \
    }                                                                                        \
    return status;                                                                           \
}

WINOGRAD_KERNEL(float, f32)
WINOGRAD_KERNEL(double, f64)
"""

# -ffp-contract=off: no fused multiply-adds, so each step rounds like the separate multiply
# and add it is written as (and like PyTorch's kernels on x86). AVX2 where the CPU has it
# (the capability is part of the cache key, so a shared cache never serves the wrong CPU).
_FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off")
_COMPILERS = ("cc", "gcc", "clang")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: AnyNet's inference uses :func:`conv3x3` for the 3x3 convolutions with at most this many
#: output channels: all of the U-Net's with the default ``init_channels=1`` (1 to 8 outputs),
#: where oneDNN, which vectorises over output channels, runs at a few GFLOP/s. Measured on 2
#: cores at 384 x 1248 (both views): the ten U-Net convolutions after the stem 4.1 ms in
#: oneDNN, 1.2 ms here; with 16 outputs oneDNN is 2x faster than this loop (the SPN's gate
#: network's 16-channel layers run as :func:`winograd3x3` instead).
FEW_CHANNELS = 8
#: :func:`winograd3x3` takes ``(O, 16, 3, 3)`` weights with these ``O`` (the 8-channel SPN's
#: gate network: 16 -> 16 twice, 16 -> 24).
WINOGRAD_IN_CHANNELS = 16
WINOGRAD_OUT_CHANNELS = (16, 24)
#: Winograd F(2x2, 3x3)'s weight transform
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
_SIGNATURES = {  # number of pointer arguments, then of int64 arguments (range and threads last)
    "spn_forward": (5, 5),
    "spn_forward_cl": (3, 5),
    "spn_backward": (11, 5),
    "conv3x3": (6, 11),
    "tap_sum": (5, 7),
    "max_pool2x2": (2, 5),
    "resize_bilinear": (2, 9),
    "winograd3x3": (3, 7),
}


@dataclass(frozen=True)
class NativeKernels:
    """The compiled kernels, or why there are none.

    Attributes:
        library: the loaded shared library, ``None`` where unavailable.
        reason: why it is unavailable (what was tried and where), ``""`` when available.
        path: the shared library's file, if built.
    """

    library: Optional[ctypes.CDLL]
    reason: str = ""
    path: Optional[Path] = None

    @property
    def available(self) -> bool:
        return self.library is not None


def _default_cache_dir() -> Path:
    """The folder PyTorch's own JIT extensions use (``TORCH_EXTENSIONS_DIR`` overrides it there
    too), under which this module's library goes."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not root:
        try:  # imports setuptools, which not every environment has
            from torch.utils.cpp_extension import get_default_build_root

            root = get_default_build_root()
        except ImportError:
            cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            root = Path(cache) / "torch_extensions"
    return Path(root) / "lightning_depth_native"


def _find_compiler(candidates: Sequence[str]) -> Optional[str]:
    for name in candidates:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _flags() -> tuple[str, ...]:
    capability = torch.backends.cpu.get_cpu_capability()
    # ATen's AVX2 capability implies FMA too; -ffp-contract=off keeps the compiler from fusing
    # on its own, so only winograd3x3's explicit fused multiply-adds use it.
    return _FLAGS + (("-mavx2", "-mfma") if capability in ("AVX2", "AVX512") else ())


def _build(compiler: str, flags: Sequence[str], cache_dir: Path) -> Path:
    """Compile ``_SOURCE`` into ``cache_dir`` (if not there yet) and return the library path."""
    key = hashlib.sha256("\0".join((_SOURCE, compiler, *flags)).encode()).hexdigest()[:16]
    target = cache_dir / f"kernels_{key}.so"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a private folder, then rename: concurrent first uses (test workers, DDP
    # processes) never load a half-written file.
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        source = Path(work) / "kernels.c"
        source.write_text(_SOURCE)
        built = Path(work) / "kernels.so"
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", str(built)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{compiler} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        os.replace(built, target)
    return target


def _load(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for name, (pointers, sizes) in _SIGNATURES.items():
        for suffix in _SUFFIX.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64] * sizes
            returns_status = name in ("conv3x3", "resize_bilinear", "winograd3x3")
            function.restype = ctypes.c_int if returns_status else None
    library.native_openmp.argtypes = []
    library.native_openmp.restype = ctypes.c_int64
    library.openmp_pid = os.getpid() if library.native_openmp() else None  # see uses_openmp
    return library


def build_native_kernels(
    compilers: Sequence[str] = _COMPILERS, cache_dir: Optional[Path] = None
) -> NativeKernels:
    """Build (or reuse from the cache) and load the C kernels.

    Args:
        compilers: C compiler names or paths; the first one found is used.
        cache_dir: where the shared library goes; default: see the module docstring.

    Returns:
        :class:`NativeKernels`, unavailable with the reason if no compiler was found, the build
        failed or the library did not load. Never raises for those.
    """
    compiler = _find_compiler(compilers)
    if compiler is None:
        return NativeKernels(
            None, f"no C compiler found on PATH (looked for {', '.join(compilers)})"
        )
    errors = []
    folder = cache_dir
    for attempt in range(2 if cache_dir is None else 1):
        if attempt == 1:  # the cache folder could not be used: a fresh temporary one
            folder = Path(tempfile.mkdtemp(prefix="lightning_depth_native_"))
        elif folder is None:
            folder = _default_cache_dir()
        # With OpenMP where the compiler has it (the kernels then share PyTorch's thread
        # pool), else without (Python threads split the work).
        for flags in (_flags() + ("-fopenmp",), _flags()):
            try:
                path = _build(compiler, flags, folder)
                return NativeKernels(_load(path), "", path)
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                errors.append(f"in {folder} with {' '.join(flags)}: {err}")
    return NativeKernels(None, "building the C kernels failed: " + "; ".join(errors))


@functools.lru_cache(maxsize=1)
def native_kernels() -> NativeKernels:
    """:func:`build_native_kernels` with the defaults, once per process."""
    return build_native_kernels()


def supports(*tensors: torch.Tensor) -> bool:
    """Whether the C kernels take these tensors: CPU, one dtype, float32 or float64."""
    first = tensors[0]
    return (
        first.device.type == "cpu"
        and first.dtype in _SUFFIX
        and all(t.device == first.device and t.dtype == first.dtype for t in tensors)
    )


def _is_compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return is_compiling is not None and is_compiling()


def _autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")  # torch >= 2.4
    except TypeError:
        return torch.is_autocast_cpu_enabled()


_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lightning_depth_native_kernels", default=True
)


@contextlib.contextmanager
def kernels_enabled(enabled: bool) -> Iterator[None]:
    """Within the block, use the C kernels where they apply (``True``, the default outside any
    block) or nowhere (``False``: the PyTorch forms, e.g. to compare or time them). An explicit
    ``spn_left_to_right(..., backend="native")`` still uses them. Scoped to the current thread
    or task (a :class:`contextvars.ContextVar`).

    Example:
        >>> with kernels_enabled(False):
        ...     enabled()
        False
    """
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def enabled() -> bool:
    """Whether the C kernels may be used here (see :func:`kernels_enabled`)."""
    return _ENABLED.get()


def inference_kernels(*tensors: torch.Tensor) -> Optional[ctypes.CDLL]:
    """The library if the inference-only kernels apply to these tensors, else ``None``.

    They apply in eager mode (no export, tracing or ``torch.compile``, whose graphs keep the
    PyTorch forms), without CPU autocast (whose dtype choices they would not follow), when no
    gradient is needed (``torch.no_grad``/``inference_mode``, or no input requires one), to CPU
    float32/float64 tensors of one dtype (:func:`supports`), where the kernels could be built,
    unless disabled by :func:`kernels_enabled`.
    """
    if _is_compiling() or capture_mode() is not None or not enabled() or not supports(*tensors):
        return None
    if _autocast_enabled():
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    return native_kernels().library


def conv3x3_kernels(weight: torch.Tensor, *tensors: torch.Tensor) -> Optional[ctypes.CDLL]:
    """:func:`inference_kernels` for a :func:`conv3x3` of ``tensors`` with ``weight``, and
    ``None`` also where the weight has more than :data:`FEW_CHANNELS` output channels (oneDNN
    is the faster there)."""
    return inference_kernels(*tensors, weight) if weight.shape[0] <= FEW_CHANNELS else None


def winograd_kernels(weight: torch.Tensor, *tensors: torch.Tensor) -> Optional[ctypes.CDLL]:
    """:func:`inference_kernels` for a :func:`winograd3x3` of ``tensors`` with ``weight``, and
    ``None`` also where the weight is not ``(O, 16, 3, 3)`` with ``O`` in
    :data:`WINOGRAD_OUT_CHANNELS`."""
    o, c, kh, kw = weight.shape
    if (kh, kw) != (3, 3) or not _winograd_channels(o, c):
        return None
    return inference_kernels(*tensors, weight)


def _winograd_channels(outputs: int, inputs: int) -> bool:
    """Whether :func:`winograd3x3` has a kernel for these channel counts."""
    return inputs == WINOGRAD_IN_CHANNELS and outputs in WINOGRAD_OUT_CHANNELS


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """``(O, C, 3, 3)`` weights in Winograd F(2x2, 3x3) form, ``G g G^T`` per (output, input)
    pair, as :func:`winograd3x3` takes them: ``(16, C, O)`` (the 4 x 4 positions row-major),
    computed in float64 and returned in the weight's dtype."""
    g = weight.new_tensor(_WINOGRAD_G, dtype=torch.float64)
    u = g @ weight.detach().double() @ g.T  # (O, C, 4, 4)
    o, c = weight.shape[:2]
    return u.permute(2, 3, 1, 0).reshape(16, c, o).to(weight.dtype).contiguous()


def winograd3x3(
    library: ctypes.CDLL,
    x: torch.Tensor,
    weight: torch.Tensor,
    relu_input: bool = False,
    transformed: bool = False,
) -> torch.Tensor:
    """``F.conv2d(act(x), weight, padding=1)`` with ``act = relu`` if ``relu_input``, else the
    identity, by Winograd's F(2x2, 3x3) algorithm: 2.25x fewer multiplications than the direct
    convolution. For the SPN's gate network, whose 16-channel layers oneDNN already runs near
    this CPU's peak (and whose 24-output layer costs it as much as 32 outputs, in its blocks
    of 16): at 96 x 312 on 2 cores, 16 -> 16 channels 0.69 -> 0.58 ms, 16 -> 24 1.35 -> 0.76
    ms. (oneDNN has Winograd kernels, but PyTorch does not select them.) Results differ from
    the direct convolution by float rounding (the transforms add and subtract inputs before the
    products): measured 2e-7 of the output's range in float32, as close to a float64 reference
    as oneDNN's own result.

    Args:
        library: from :func:`winograd_kernels`.
        x: ``(N, 16, H, W)``.
        weight: ``(O, 16, 3, 3)``, ``O`` in :data:`WINOGRAD_OUT_CHANNELS`; or, if
            ``transformed``, that weight's :func:`winograd_weights`, ``(16, 16, O)``.
        relu_input: apply ReLU to ``x`` first (fused into the loads).
        transformed: ``weight`` is already in Winograd form.

    Returns:
        ``(N, O, H, W)``, channels-last.
    """
    n, c, h, w = x.shape
    o = weight.shape[-1] if transformed else weight.shape[0]
    expected = (16, c, o) if transformed else (o, c, 3, 3)
    if weight.shape != expected or not _winograd_channels(o, c):
        raise ValueError(
            f"winograd3x3: weight must be (O, {WINOGRAD_IN_CHANNELS}, 3, 3) (transformed: (16, "
            f"{WINOGRAD_IN_CHANNELS}, O)) with O in "
            f"{WINOGRAD_OUT_CHANNELS} and x (N, {WINOGRAD_IN_CHANNELS}, H, W); got weight "
            f"{tuple(weight.shape)}, x {tuple(x.shape)}"
        )
    x = x.detach().contiguous(memory_format=torch.channels_last)
    u = weight.detach().contiguous() if transformed else winograd_weights(weight)
    out = torch.empty((n, o, h, w), dtype=x.dtype, memory_format=torch.channels_last)
    kernel = getattr(library, f"winograd3x3_{_SUFFIX[x.dtype]}")
    args = [_pointer(x), _pointer(u), _pointer(out), h, w, o, int(relu_input)]
    if out.numel() and _run(library, kernel, args, n * ((h + 1) // 2)):
        raise RuntimeError(f"winograd3x3: the kernel refused {o} output channels")
    return out


def _pointer(t: Optional[torch.Tensor]) -> Optional[ctypes.c_void_p]:
    """The address of ``t``'s first element, or NULL."""
    return None if t is None else ctypes.c_void_p(t.data_ptr())


@functools.lru_cache(maxsize=1)
def _executor(pid: int) -> ThreadPoolExecutor:
    """The worker threads of process ``pid``: a forked child (a data-loader worker) starts
    its own, since threads do not survive a fork."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ld_native")


def uses_openmp(library: ctypes.CDLL) -> bool:
    """Whether the kernels of ``library`` split their work over OpenMP threads here: built
    with OpenMP (see :func:`build_native_kernels`), and this is the process that loaded it.
    In a forked child (a data-loader worker) libgomp's thread pool is the parent's, whose
    threads did not survive the fork, and a parallel region waits for them forever (PyTorch's
    own operators too); there Python threads split the work."""
    return getattr(library, "openmp_pid", None) == os.getpid()


def _run(library: ctypes.CDLL, kernel, args: Sequence, total: int, min_chunk: int = 1) -> int:
    """``kernel(*args, lo, hi, threads)`` over the range ``[0, total)`` (rows, planes or
    pixels), split in up to ``torch.get_num_threads()`` parts of at least ``min_chunk``; the
    OR of the returned statuses (0: success; ``None`` for kernels without one).

    Built with OpenMP, the kernel splits the range itself over the threads of the process's
    OpenMP pool, which is PyTorch's own (the same ``libgomp``, already loaded): its threads
    are awake between PyTorch's operators, so a kernel starts at once and competes with no
    spinning thread. Without OpenMP, Python threads run the parts concurrently (ctypes releases
    the GIL during each call)."""
    parts = max(1, min(torch.get_num_threads(), total // max(min_chunk, 1)))
    if parts == 1 or uses_openmp(library):
        return kernel(*args, 0, total, parts) or 0
    bounds = [total * i // parts for i in range(parts + 1)]
    executor = _executor(os.getpid())
    futures = [executor.submit(kernel, *args, bounds[i], bounds[i + 1], 1) for i in range(1, parts)]
    status = kernel(*args, bounds[0], bounds[1], 1) or 0
    for future in futures:
        status |= future.result() or 0
    return status


def spn_forward(
    library: ctypes.CDLL, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> torch.Tensor:
    """SPN forward recurrence (see :mod:`~lightning_depth.models.spn`): ``(B, C, H, W)``
    inputs (see :func:`supports`) -> ``(B, C, H, W)``."""
    x, g1, g2, g3 = (t.detach().contiguous() for t in (x, g1, g2, g3))
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    b, c, h, w = x.shape
    kernel = getattr(library, f"spn_forward_{_SUFFIX[x.dtype]}")
    if out.numel():
        _run(library, kernel, [*map(_pointer, (x, g1, g2, g3, out)), h, w], b * c)
    return out


def spn_forward_normalized(
    library: ctypes.CDLL, x: torch.Tensor, gates: torch.Tensor
) -> torch.Tensor:
    """SPN forward with :class:`~lightning_depth.models.anynet.SPNRefinement`'s gate
    normalisation, for inference: ``g1, g2, g3 = gates.split(C, 1)``, each divided by
    ``|g1| + |g2| + |g3| + 1e-8``, then :func:`spn_forward`. Computed in channels-last order
    (the gate network's output layout), the ``C`` channels of a pixel at once.

    Args:
        library: from :func:`inference_kernels`.
        x: ``(B, C, H, W)``.
        gates: ``(B, 3C, H, W)``.

    Returns:
        ``(B, C, H, W)``, channels-last.
    """
    b, c, h, w = x.shape
    if gates.shape != (b, 3 * c, h, w):
        raise ValueError(
            f"spn_forward_normalized: gates must be (B, 3C, H, W) = {(b, 3 * c, h, w)}, got "
            f"{tuple(gates.shape)}"
        )
    x, gates = (t.detach().contiguous(memory_format=torch.channels_last) for t in (x, gates))
    out = torch.empty_like(x, memory_format=torch.channels_last)
    if out.numel():
        kernel = getattr(library, f"spn_forward_cl_{_SUFFIX[x.dtype]}")
        # Rows split over threads only with OpenMP (a barrier per column); at least 16 rows
        # a thread.
        threads = min(torch.get_num_threads(), h // 16) if uses_openmp(library) else 1
        kernel(_pointer(x), _pointer(gates), _pointer(out), b, c, h, w, max(threads, 1))
    return out


def spn_backward(
    library: ctypes.CDLL,
    x: torch.Tensor,
    g1: torch.Tensor,
    g2: torch.Tensor,
    g3: torch.Tensor,
    out: torch.Tensor,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SPN gradients ``(x, g1, g2, g3)``, each ``(B, C, H, W)``, from the forward's inputs,
    its output ``out`` and the output gradient."""
    tensors = [t.detach().contiguous() for t in (x, g1, g2, g3, out, grad_out.to(x.dtype))]
    grads = [torch.empty_like(tensors[0], memory_format=torch.contiguous_format) for _ in range(5)]
    b, c, h, w = x.shape
    kernel = getattr(library, f"spn_backward_{_SUFFIX[x.dtype]}")
    if x.numel():
        _run(library, kernel, [*map(_pointer, tensors + grads), h, w], b * c)
    return grads[1], grads[2], grads[3], grads[4]


def batch_norm_affine(bn: torch.nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, ...]:
    """Eval batch norm as ``x * scale + shift``, per channel, computed as PyTorch's CPU kernel
    does (``scale = weight / sqrt(var + eps)``, ``shift = bias - mean * scale``)."""
    invstd = 1 / torch.sqrt(bn.running_var + bn.eps)
    scale = invstd * bn.weight if bn.weight is not None else invstd
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = bn.bias - bn.running_mean * scale
    return scale.detach(), shift.detach()


def conv3x3(
    library: ctypes.CDLL,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: int = 1,
    scale: Optional[torch.Tensor] = None,
    shift: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``F.conv2d(act(x), weight, bias, stride, padding=1)`` for a ``(O, C, 3, 3)`` weight with
    few output channels (see :data:`FEW_CHANNELS`), with ``act(x) = relu(x * scale + shift)``
    per channel if ``scale``/``shift`` are given (a pre-activation: eval batch norm, ReLU; see
    :func:`batch_norm_affine`), else ``x``.

    Args:
        library: from :func:`inference_kernels`.
        x: ``(N, C, H, W)``.
        weight: ``(O, C, 3, 3)``.
        bias: ``(O,)`` or ``None``.
        stride: convolution stride.
        scale, shift: ``(C,)`` each, or ``None``.
        out: a contiguous ``(N, O, Ho, Wo)`` tensor to write to (e.g. a slice of a larger
            batch), or ``None`` for a new one.

    Returns:
        ``(N, O, Ho, Wo)``, NCHW, with ``Ho = (H - 1) // stride + 1`` (likewise ``Wo``).
    """
    n, c, h, w = x.shape
    o = weight.shape[0]
    if weight.ndim != 4 or weight.shape[1:] != (c, 3, 3):
        raise ValueError(
            f"conv3x3: weight must be (O, C, 3, 3) with C = {c}, got {tuple(weight.shape)}"
        )
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    if out is None:
        out = x.new_empty((n, o, ho, wo))
    elif out.shape != (n, o, ho, wo) or not out.is_contiguous() or out.dtype != x.dtype:
        raise ValueError(
            f"conv3x3: out must be a contiguous {x.dtype} tensor of shape "
            f"{(n, o, ho, wo)}, got {out.dtype} {tuple(out.shape)}"
        )
    args = [x, weight, bias, scale, shift]
    x, weight, bias, scale, shift = (None if t is None else t.detach().contiguous() for t in args)
    kernel = getattr(library, f"conv3x3_{_SUFFIX[x.dtype]}")
    pointers = [_pointer(t) for t in (x, weight, bias, scale, shift, out)]
    args = [*pointers, n, c, o, h, w, stride, ho, wo]
    if out.numel() and _run(library, kernel, args, ho, min_chunk=8):
        raise MemoryError(f"conv3x3: no memory for a row buffer of {w} values")
    return out


def tap_sum(
    library: ctypes.CDLL,
    taps: torch.Tensor,
    depth: int,
    scale: Optional[torch.Tensor] = None,
    shift: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The depth-tap sum of :func:`~lightning_depth.models.conv3d.conv3d_depth_major`,
    optionally followed by ``relu(v * scale + shift)`` per channel (the next layer's eval batch
    norm and ReLU).

    Args:
        library: from :func:`inference_kernels`.
        taps: ``(B * D, 3 * O, H, W)``, output channel block ``k`` holding depth tap ``k``.
        depth: ``D``.
        scale, shift: ``(O,)`` each, or ``None``.

    Returns:
        ``(B * D, O, H, W)``, channels-last.
    """
    n, c3, h, w = taps.shape
    taps = taps.contiguous(memory_format=torch.channels_last)
    out = torch.empty(
        (n, c3 // 3, h, w), dtype=taps.dtype, device=taps.device, memory_format=torch.channels_last
    )
    scale, shift = (None if t is None else t.detach().contiguous() for t in (scale, shift))
    kernel = getattr(library, f"tap_sum_{_SUFFIX[taps.dtype]}")

    zeros = taps.new_zeros(c3 // 3)
    pointers = [_pointer(t) for t in (taps, out, scale, shift, zeros)]
    if out.numel():
        _run(library, kernel, [*pointers, n, depth, h * w, c3 // 3], h * w, min_chunk=256)
    return out


def max_pool2x2(library: ctypes.CDLL, x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2)``: ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``, NCHW.
    (PyTorch's kernel took ~5 ns per output for AnyNet's 1- and 2-channel maps.)"""
    n, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(
            f"max_pool2x2: x must be (N, C, H, W) with H, W >= 2, got {tuple(x.shape)}"
        )
    x = x.contiguous()
    out = x.new_empty((n, c, h // 2, w // 2))
    kernel = getattr(library, f"max_pool2x2_{_SUFFIX[x.dtype]}")
    if out.numel():
        _run(library, kernel, [_pointer(x), _pointer(out), h, w], n * c)
    return out


def resize_bilinear(
    library: ctypes.CDLL, x: torch.Tensor, size: tuple[int, int], align_corners: bool
) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=align_corners)`` for an
    ``(N, C, h, w)`` tensor: ``(N, C, H, W)``, NCHW. (PyTorch's kernel runs a 1-channel map on one
    thread: 0.7 ms per 384 x 1248 output, four per AnyNet pass; here 0.09 ms on 2 cores from
    96 x 312, each input row interpolated along the width once for the output rows it serves.
    The same operations in the same order as PyTorch's, so equal to float rounding.)"""
    n, c, h, w = x.shape
    height, width = (int(v) for v in size)
    x = x.detach().contiguous()
    out = x.new_empty((n, c, height, width))
    kernel = getattr(library, f"resize_bilinear_{_SUFFIX[x.dtype]}")
    args = [_pointer(x), _pointer(out), n * c, h, w, height, width, int(align_corners)]
    if out.numel() and x.numel() and _run(library, kernel, args, height, min_chunk=8):
        raise MemoryError(f"resize_bilinear: no memory for the column tables of {width}")
    return out


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for reuse instead of returning it to the
    system, for the rest of the process (``mallopt`` of ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD``; as if started with ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set).

    Why: PyTorch's CPU allocator has no cache, so each full-resolution activation is a fresh
    ``malloc``; glibc serves blocks above its (adaptive) mmap threshold with ``mmap`` and
    returns them on ``free``, and every page is then faulted in again on first touch. An
    AnyNet pass at 384 x 1248 took 4,000-8,000 page faults and 12-20 ms of system time this
    way (2 cores; measured with ``getrusage``); with these settings, ~100 and ~0. Results do
    not change; the process keeps up to its peak memory. jemalloc or tcmalloc
    (``LD_PRELOAD``) do the same job; this is for processes that run inference on CPU.

    Args:
        mmap_threshold: blocks at least this large are ``mmap``-ed (32 MiB, glibc's maximum).
        trim_threshold: free memory at the top of the heap kept before returning it.

    Returns:
        whether the settings were applied (``False`` where the C library is not glibc).
    """
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(
        mallopt(m_trim_threshold, trim_threshold)
    )

// The kernel's arithmetic: 8-lane float vectors, a rational tanh and sigmoid, and the small
// register-blocked GEMM every step runs. Included by recurrence.cc (one translation unit); plain
// functions of pointers, no state. bench_kernel.cc times them alone.

#pragma once

#include <cstdint>

// -- 8-lane float vectors (GCC/Clang vector extensions: AVX on x86-64, NEON pairs on ARM) ------

typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));  // unaligned access is fine
typedef int32_t v8i __attribute__((vector_size(32), aligned(4), may_alias));

static inline v8 load8(const float* p) { return *reinterpret_cast<const v8*>(p); }
static inline void store8(float* p, v8 v) { *reinterpret_cast<v8*>(p) = v; }
static inline v8 splat(float x) { return v8{} + x; }

// tanh(x) = x P(x^2) / Q(x^2) on |x| <= 9, a rational minimax fit (degrees 5 and 3 in x^2, fitted
// for this file in float64 by a reweighted least-squares iteration on [0, 9]); beyond 9, and after
// rounding, +-1, which tanh is in float32 there. Measured over 400,001 points of [0, 9] in float32
// arithmetic: absolute error 3.4e-7, about 3 ulps near 1. No overflow; NaN stays NaN (the clamp
// compares a > 9, false for NaN). 14 vector operations, one of them a division.
static inline v8 tanh8(v8 x) {
  v8i sign = (v8i)x & (int32_t)0x80000000;
  v8 a = (v8)((v8i)x & (int32_t)0x7fffffff);
  a = a > 9.0f ? splat(9.0f) : a;
  v8 u = a * a;
  v8 p = splat(1.783897906e-11f);
  p = p * u + -1.259164234e-08f;
  p = p * u + 9.195290435e-06f;
  p = p * u + 2.912024302e-03f;
  p = p * u + 1.291071492e-01f;
  p = p * u + 9.999997379e-01f;
  v8 q = splat(2.269446584e-04f);
  q = q * u + 2.372630179e-02f;
  q = q * u + 4.624394835e-01f;
  q = q * u + 1.0f;
  v8 t = a * p / q;
  t = t > 1.0f ? splat(1.0f) : t;
  return (v8)((v8i)t | sign);
}

// sigmoid(x) = (1 + tanh(x / 2)) / 2: no overflow either way.
static inline v8 sigmoid8(v8 x) { return 0.5f + 0.5f * tanh8(0.5f * x); }

// -- small GEMM: C = C0 + A W, rows of A, C0, C given by pointers --------------------------------
// Rows by pointer let the forward read each step's input rows straight from the table (gather)
// and skip masked rows. A's element (r, k) is a[r][k * a_step]: a_step = 1 for row-major A,
// a_step = lda for A^T (dW_h = h_prev^T dz).

template <int R, int L>
static inline void gemm_block(int K, const float* const* a, long a_step, const float* w, long ldw,
                              const float* const* c0, float* const* c, int j) {
  v8 acc[R][L];
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < L; ++l) acc[r][l] = c0 ? load8(c0[r] + j + 8 * l) : splat(0.0f);
  for (int k = 0; k < K; ++k) {
    v8 wk[L];
    for (int l = 0; l < L; ++l) wk[l] = load8(w + k * ldw + j + 8 * l);
    for (int r = 0; r < R; ++r) {
      v8 ark = splat(a[r][k * a_step]);
      for (int l = 0; l < L; ++l) acc[r][l] += ark * wk[l];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < L; ++l) store8(c[r] + j + 8 * l, acc[r][l]);
}

template <int L>
static void gemm_columns(int M, int K, const float* const* a, long a_step, const float* w, long ldw,
                         const float* const* c0, float* const* c, int j) {
  int m = 0;
  for (; m + 6 <= M; m += 6) gemm_block<6, L>(K, a + m, a_step, w, ldw, c0 ? c0 + m : nullptr, c + m, j);
  const float* const* c0m = c0 ? c0 + m : nullptr;
  switch (M - m) {
    case 5: gemm_block<5, L>(K, a + m, a_step, w, ldw, c0m, c + m, j); break;
    case 4: gemm_block<4, L>(K, a + m, a_step, w, ldw, c0m, c + m, j); break;
    case 3: gemm_block<3, L>(K, a + m, a_step, w, ldw, c0m, c + m, j); break;
    case 2: gemm_block<2, L>(K, a + m, a_step, w, ldw, c0m, c + m, j); break;
    case 1: gemm_block<1, L>(K, a + m, a_step, w, ldw, c0m, c + m, j); break;
    default: break;
  }
}

// C (M x N) = C0 + A (M x K) W (K x N); N a multiple of 8. Column blocks outside, so a block of
// W stays in L1 while every row passes over it. c0 = nullptr means C0 = 0.
static void gemm(int M, int N, int K, const float* const* a, long a_step, const float* w, long ldw,
                 const float* const* c0, float* const* c) {
  int j = 0;
#ifdef __AVX512F__  // 32 vector registers: 6 x 4 accumulators fit, and each broadcast feeds 4 FMAs
  for (; j + 32 <= N; j += 32) gemm_columns<4>(M, K, a, a_step, w, ldw, c0, c, j);
#endif
  for (; j + 16 <= N; j += 16) gemm_columns<2>(M, K, a, a_step, w, ldw, c0, c, j);
  if (j < N) gemm_columns<1>(M, K, a, a_step, w, ldw, c0, c, j);
}

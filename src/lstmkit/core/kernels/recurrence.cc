// lstmkit's fused LSTM recurrence for the CPU: the forward and backward loops of
// lstmkit/bptt.py, each one XLA custom call (FFI) that runs all T steps itself.
//
// Why: under XLA every step of a `lax.scan` is a dozen small kernels dispatched one by one, and
// at B = 64, H = 64 that overhead is as large as the arithmetic. Here a step is one small GEMM
// and one pass over the gates, and the directions of a bidirectional layer run on threads of
// their own (they are independent until they are merged). The math is bptt.py's, line by line;
// tests/test_kernel.py checks the two against each other.
//
// Shape legend: D directions, B batch, T time, V table rows, H hidden units, G = 4H.
// Step s of a direction reads time t = s (forward) or t = T-1-s (reverse).
//
//   forward, per step (m = mask[b, t]):
//     z          = x_t W_x + b + h_prev W_h     (x_t W_x + b is a row of the input projection)
//     i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
//     c          = f * c_prev + i * g           where m, else c_prev
//     h          = o * tanh(c)                  where m, else h_prev
//     hs[b, t]   = h                            where m, else 0
//   backward, the forward read bottom-up, carrying dh and dc:
//     dh        += dhs[b, t]                    where m
//     do         = dh * tanh(c)
//     dc_tot     = dc + dh * o * (1 - tanh(c)^2)
//     dz         = [dc_tot g i(1-i), dc_tot c_prev f(1-f), dc_tot i (1-g^2), do o(1-o)]  where m, else 0
//     dh_prev    = dz W_h^T                     where m, else dh
//     dc_prev    = dc_tot * f                   where m, else dc
//     dW_h      += h_prev^T dz                  (per step, so no (T, B, G) dz is ever stored)
//     dx_proj    = dz                           (dense input), or rows ids[b, t] of the table += dz

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

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

// -- the loops -----------------------------------------------------------------------------------

struct Dims {
  int64_t D, B, T, H, V;  // V = table rows when the input is gathered, else 0
  int64_t G() const { return 4 * H; }
};

// The table row that token (b, t) reads: ids clipped to [0, V), as jnp.take(mode="clip").
static inline int64_t table_row(const int32_t* ids, int64_t b, int64_t t, const Dims& n) {
  int64_t id = ids[b * n.T + t];
  return id < 0 ? 0 : (id >= n.V ? n.V - 1 : id);
}

struct ForwardArgs {
  Dims dims;
  const float *W_h, *x_proj, *h0, *c0;  // x_proj: table (D, V, G) or dense (D, B, T, G)
  const int32_t* ids;                     // (B, T), only when gathering
  const bool* mask;                       // (B, T)
  float *hs, *h_T, *c_T;         // hs null: the caller wants the final state only
  float *gates, *h_seq, *c_seq;  // the residuals for the backward; null when only predicting
};

// One direction's forward loop. When training it saves the activations [i f g o] (T, B, G) and
// the carried h, c (T, B, H) after each step, in scan order, for the backward loop; when only
// predicting it keeps two steps of each in scratch buffers instead.
static void forward_direction(const ForwardArgs& A, int64_t d, bool reverse) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G();
  const bool save = A.gates != nullptr;
  const float* W_h = A.W_h + d * H * G;
  const float* h_prev = A.h0 + d * B * H;
  const float* c_prev = A.c0 + d * B * H;
  std::vector<const float*> x_rows(B), h_rows(B);
  std::vector<float*> z_rows(B);
  std::vector<float> scratch(save ? 0 : B * G + 4 * B * H);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    float *gates, *h_out, *c_out;
    if (save) {
      gates = A.gates + (d * T + s) * B * G;
      h_out = A.h_seq + (d * T + s) * B * H;
      c_out = A.c_seq + (d * T + s) * B * H;
    } else {  // alternate two (h, c) slots: step s reads slot s-1 and writes slot s
      gates = scratch.data();
      h_out = scratch.data() + B * G + (s % 2) * 2 * B * H;
      c_out = h_out + B * H;
    }
    // z = x_proj rows + h_prev W_h, only for the rows whose token is real at this step.
    int64_t M = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (!A.mask[b * T + t]) continue;
      if (n.V) {
        x_rows[M] = A.x_proj + (d * n.V + table_row(A.ids, b, t, n)) * G;
      } else {
        x_rows[M] = A.x_proj + ((d * B + b) * T + t) * G;
      }
      h_rows[M] = h_prev + b * H;
      z_rows[M++] = gates + b * G;
    }
    gemm(M, G, H, h_rows.data(), 1, W_h, G, x_rows.data(), z_rows.data());
    for (int64_t b = 0; b < B; ++b) {
      float* hs_row = A.hs ? A.hs + ((d * B + b) * T + t) * H : nullptr;
      if (!A.mask[b * T + t]) {  // a masked step leaves the state as it was
        std::memcpy(h_out + b * H, h_prev + b * H, H * sizeof(float));
        std::memcpy(c_out + b * H, c_prev + b * H, H * sizeof(float));
        if (hs_row) std::memset(hs_row, 0, H * sizeof(float));
        continue;
      }
      float* z = gates + b * G;
      for (int64_t j = 0; j < H; j += 8) {
        v8 i = sigmoid8(load8(z + j));
        v8 f = sigmoid8(load8(z + H + j));
        v8 g = tanh8(load8(z + 2 * H + j));
        v8 o = sigmoid8(load8(z + 3 * H + j));
        v8 c = f * load8(c_prev + b * H + j) + i * g;  // keep part of the old memory, write part of the new
        v8 h = o * tanh8(c);
        if (save) store8(z + j, i), store8(z + H + j, f), store8(z + 2 * H + j, g), store8(z + 3 * H + j, o);
        store8(c_out + b * H + j, c), store8(h_out + b * H + j, h);
        if (hs_row) store8(hs_row + j, h);
      }
    }
    h_prev = h_out, c_prev = c_out;
  }
  std::memcpy(A.h_T + d * B * H, h_prev, B * H * sizeof(float));
  std::memcpy(A.c_T + d * B * H, c_prev, B * H * sizeof(float));
}

struct BackwardArgs {
  Dims dims;
  const float *W_h, *h0, *c0, *gates, *h_seq, *c_seq;
  const float *d_hs, *dh_T, *dc_T;  // d_hs null: only the final state was used
  const int32_t* ids;
  const bool* mask;
  float *dW_h, *dx_proj, *dh0, *dc0;  // dx_proj: table (D, V, G) or dense (D, B, T, G)
};

static void backward_direction(const BackwardArgs& A, int64_t d, bool reverse) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G();
  // W_h^T (G, H), so that dz W_h^T is a row-major GEMM like the forward's.
  std::vector<float> W_h_T(G * H);
  const float* W_h = A.W_h + d * H * G;
  for (int64_t k = 0; k < H; ++k)
    for (int64_t j = 0; j < G; ++j) W_h_T[j * H + k] = W_h[k * G + j];
  float* dh = A.dh0 + d * B * H;  // the carried dh, dc live in the outputs dh0, dc0
  float* dc = A.dc0 + d * B * H;
  std::memcpy(dh, A.dh_T + d * B * H, B * H * sizeof(float));
  std::memcpy(dc, A.dc_T + d * B * H, B * H * sizeof(float));
  float* dW_h = A.dW_h + d * H * G;
  std::memset(dW_h, 0, H * G * sizeof(float));
  if (n.V) std::memset(A.dx_proj + d * n.V * G, 0, n.V * G * sizeof(float));
  std::vector<float> dz(B * G);
  std::vector<const float*> dz_rows(B), h_prev_cols(H);
  std::vector<float*> dh_rows(B), dW_rows(H);
  for (int64_t k = 0; k < H; ++k) dW_rows[k] = dW_h + k * G;
  const float* const* dW_rows_in = dW_rows.data();  // dW_h is both C0 and C: it accumulates
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const float* gates = A.gates + (d * T + s) * B * G;
    const float* c_seq = A.c_seq + (d * T + s) * B * H;
    const float* c_prev = s ? A.c_seq + (d * T + s - 1) * B * H : A.c0 + d * B * H;
    const float* h_prev = s ? A.h_seq + (d * T + s - 1) * B * H : A.h0 + d * B * H;
    int64_t M = 0;
    for (int64_t b = 0; b < B; ++b) {
      float* dz_b = dz.data() + b * G;
      if (!A.mask[b * T + t]) {  // dz = 0; dh and dc pass through unchanged
        std::memset(dz_b, 0, G * sizeof(float));
        continue;
      }
      const float* a = gates + b * G;
      const float* d_hs = A.d_hs ? A.d_hs + ((d * B + b) * T + t) * H : nullptr;
      for (int64_t j = 0; j < H; j += 8) {
        v8 i = load8(a + j), f = load8(a + H + j), g = load8(a + 2 * H + j), o = load8(a + 3 * H + j);
        v8 dh_j = d_hs ? load8(dh + b * H + j) + load8(d_hs + j) : load8(dh + b * H + j);
        v8 tanh_c = tanh8(load8(c_seq + b * H + j));
        v8 d_o = dh_j * tanh_c;
        v8 dc_tot = load8(dc + b * H + j) + dh_j * o * (1.0f - tanh_c * tanh_c);
        store8(dz_b + j, dc_tot * g * i * (1.0f - i));
        store8(dz_b + H + j, dc_tot * load8(c_prev + b * H + j) * f * (1.0f - f));
        store8(dz_b + 2 * H + j, dc_tot * i * (1.0f - g * g));
        store8(dz_b + 3 * H + j, d_o * o * (1.0f - o));
        store8(dc + b * H + j, dc_tot * f);
      }
      dz_rows[M] = dz_b;
      dh_rows[M++] = dh + b * H;
    }
    gemm(M, H, G, dz_rows.data(), 1, W_h_T.data(), H, nullptr, dh_rows.data());  // dh_prev = dz W_h^T
    for (int64_t k = 0; k < H; ++k) h_prev_cols[k] = h_prev + k;
    gemm(H, G, B, h_prev_cols.data(), H, dz.data(), G, dW_rows_in, dW_rows.data());  // dW_h += h_prev^T dz
    for (int64_t b = 0; b < B; ++b) {
      const float* dz_b = dz.data() + b * G;
      if (n.V) {  // the gathered table row gets the sum of dz over the steps that read it
        if (!A.mask[b * T + t]) continue;
        float* row = A.dx_proj + (d * n.V + table_row(A.ids, b, t, n)) * G;
        for (int64_t j = 0; j < G; j += 8) store8(row + j, load8(row + j) + load8(dz_b + j));
      } else {
        std::memcpy(A.dx_proj + ((d * B + b) * T + t) * G, dz_b, G * sizeof(float));
      }
    }
  }
}

// Runs fn(d) for every direction, direction 0 on this thread and the others on threads of their own.
template <typename Fn>
static void per_direction(int64_t D, Fn fn) {
  std::vector<std::thread> threads;
  for (int64_t d = 1; d < D; ++d) threads.emplace_back(fn, d);
  fn(0);
  for (auto& th : threads) th.join();
}

// -- FFI handlers --------------------------------------------------------------------------------

template <typename X>
static ffi::Error check_dims(const Dims& n, ffi::Buffer<ffi::F32>& W_h, X& x_proj, ffi::Buffer<ffi::S32>& ids,
                             ffi::Buffer<ffi::PRED>& mask) {
  auto wd = W_h.dimensions(), xd = x_proj.dimensions(), md = mask.dimensions();
  if (wd.size() != 3 || wd[2] != 4 * wd[1]) return ffi::Error::InvalidArgument("W_h must be (D, H, 4H)");
  if (n.H % 8) return ffi::Error::InvalidArgument("the fused kernel needs H to be a multiple of 8");
  if (md.size() != 2) return ffi::Error::InvalidArgument("mask must be (B, T)");
  if (xd.size() == 3) {
    auto id = ids.dimensions();
    if (id.size() != 2 || id[0] != md[0] || id[1] != md[1]) return ffi::Error::InvalidArgument("ids must be (B, T) like the mask");
    if (xd[0] != n.D || xd[2] != n.G()) return ffi::Error::InvalidArgument("the table must be (D, V, 4H)");
  } else if (xd.size() != 4 || xd[0] != n.D || xd[1] != n.B || xd[2] != n.T || xd[3] != n.G()) {
    return ffi::Error::InvalidArgument("the input projection must be (D, B, T, 4H)");
  }
  return ffi::Error::Success();
}

template <typename X>
static Dims dims_of(ffi::Buffer<ffi::F32>& W_h, X& x_proj, ffi::Buffer<ffi::PRED>& mask) {
  auto wd = W_h.dimensions(), xd = x_proj.dimensions(), md = mask.dimensions();
  int64_t V = xd.size() == 3 ? xd[1] : 0;
  return Dims{wd[0], md.size() == 2 ? md[0] : 0, md.size() == 2 ? md[1] : 0, wd.size() == 3 ? wd[1] : 0, V};
}

static ffi::Error Forward(ffi::Buffer<ffi::F32> W_h, ffi::Buffer<ffi::F32> x_proj, ffi::Buffer<ffi::S32> ids,
                          ffi::Buffer<ffi::PRED> mask, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                          int64_t reverse, bool save, bool sequences, ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_T,
                          ffi::ResultBuffer<ffi::F32> c_T, ffi::ResultBuffer<ffi::F32> gates,
                          ffi::ResultBuffer<ffi::F32> h_seq, ffi::ResultBuffer<ffi::F32> c_seq) {
  Dims n = dims_of(W_h, x_proj, mask);
  if (auto err = check_dims(n, W_h, x_proj, ids, mask); err.failure()) return err;
  ForwardArgs A{n, W_h.typed_data(), x_proj.typed_data(), h0.typed_data(), c0.typed_data(),
                ids.typed_data(), mask.typed_data(), sequences ? hs->typed_data() : nullptr, h_T->typed_data(),
                c_T->typed_data(), save ? gates->typed_data() : nullptr,
                save ? h_seq->typed_data() : nullptr, save ? c_seq->typed_data() : nullptr};
  per_direction(n.D, [&](int64_t d) { forward_direction(A, d, (reverse >> d) & 1); });
  return ffi::Error::Success();
}

static ffi::Error Backward(ffi::Buffer<ffi::F32> W_h, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::PRED> mask,
                           ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> gates,
                           ffi::Buffer<ffi::F32> h_seq, ffi::Buffer<ffi::F32> c_seq, ffi::Buffer<ffi::F32> d_hs,
                           ffi::Buffer<ffi::F32> dh_T, ffi::Buffer<ffi::F32> dc_T, int64_t reverse, bool sequences,
                           ffi::ResultBuffer<ffi::F32> dW_h, ffi::ResultBuffer<ffi::F32> dx_proj,
                           ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dc0) {
  // dx_proj has x_proj's shape: the table's (D, V, G) or the dense input's (D, B, T, G).
  Dims n = dims_of(W_h, *dx_proj, mask);
  if (auto err = check_dims(n, W_h, *dx_proj, ids, mask); err.failure()) return err;
  BackwardArgs A{n, W_h.typed_data(), h0.typed_data(), c0.typed_data(), gates.typed_data(),
                 h_seq.typed_data(), c_seq.typed_data(), sequences ? d_hs.typed_data() : nullptr, dh_T.typed_data(),
                 dc_T.typed_data(), ids.typed_data(), mask.typed_data(), dW_h->typed_data(),
                 dx_proj->typed_data(), dh0->typed_data(), dc0->typed_data()};
  per_direction(n.D, [&](int64_t d) { backward_direction(A, d, (reverse >> d) & 1); });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmkitRecurrenceForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // W_h (D, H, G)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x_proj: table (D, V, G) or (D, B, T, G)
                                  .Arg<ffi::Buffer<ffi::S32>>()   // ids (B, T), or (0,) for a dense input
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask (B, T)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0 (D, B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0 (D, B, H)
                                  .Attr<int64_t>("reverse")       // bit d set: direction d reads last to first
                                  .Attr<bool>("save")             // write the residuals (else they are (0,))
                                  .Attr<bool>("sequences")        // write hs (else it is (0,))
                                  .Ret<ffi::Buffer<ffi::F32>>()   // hs (D, B, T, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // h_T (D, B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // c_T (D, B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // gates (D, T, B, G), scan order
                                  .Ret<ffi::Buffer<ffi::F32>>()   // h_seq (D, T, B, H), scan order
                                  .Ret<ffi::Buffer<ffi::F32>>()); // c_seq (D, T, B, H), scan order

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmkitRecurrenceBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // W_h
                                  .Arg<ffi::Buffer<ffi::S32>>()   // ids
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // gates
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h_seq
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c_seq
                                  .Arg<ffi::Buffer<ffi::F32>>()   // d_hs (D, B, T, H), or (0,)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dh_T (D, B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dc_T (D, B, H)
                                  .Attr<int64_t>("reverse")
                                  .Attr<bool>("sequences")        // read d_hs
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dW_h (D, H, G)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dx_proj: (D, V, G) or (D, B, T, G)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dh0 (D, B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()); // dc0 (D, B, H)

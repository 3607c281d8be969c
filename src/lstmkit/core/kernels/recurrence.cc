// lstmkit's fused LSTM recurrence for the CPU: the forward and backward loops of
// lstmkit/bptt.py, each one XLA custom call (FFI) that runs all T steps itself.
//
// Why: under XLA every step of a `lax.scan` is a dozen small kernels dispatched one by one, and
// at B = 64, H = 64 that overhead is as large as the arithmetic. Here a step is one small GEMM
// and one pass over the gates (two GEMMs backward), over the rows whose token is real at that
// step only: a padded step costs no GEMM, forward or backward, only a copy of the carried state.
// The math is bptt.py's, line by line; tests/core/test_fused.py checks the two against each other.
//
// Threads: the rows of a batch never interact in an LSTM, so each direction's rows are cut into
// contiguous blocks and each block runs all T steps on its own, on a pool of threads started once
// per process (sized by lstmkit/core/fused.py: LSTMKIT_THREADS, else the CPUs the process may
// use). Threads meet only when a call ends, not at every step. The two sums over the batch, dW_h
// and the gathered table's gradient, are kept per block and added up afterwards in a fixed order,
// so a result depends on the number of threads, never on which thread ran what, or when.
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
//     dW_h      += h_prev^T dz                  (per step: with one block of rows, no (T, B, G) dz is stored)
//     dx_proj    = dz                           (dense input), or rows ids[b, t] of the table += dz

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backward.h"
#include "pool.h"
#include "rows.h"
#include "simd.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// -- the forward loop (the backward is in backward.h) ---------------------------------------------

struct ForwardArgs {
  Dims dims;
  const float *W_h, *x_proj, *h0, *c0;  // x_proj: table (D, V, G) or dense (D, B, T, G)
  const int32_t* ids;                     // (B, T), only when gathering
  const bool* mask;                       // (B, T)
  float *hs, *h_T, *c_T;         // hs null: the caller wants the final state only
  float *gates, *h_seq, *c_seq;  // the residuals for the backward; null when only predicting
};

// One direction's forward loop over rows r of the batch. When training it saves the activations
// [i f g o] (T, B, G) and the carried h, c (T, B, H) after each step, in scan order, for the
// backward loop; when only predicting it keeps two steps of each in scratch buffers instead.
// Pointers named for a (., B, .) buffer point at row r.begin, and are indexed by l = b - r.begin.
static void forward_rows(const ForwardArgs& A, int64_t d, bool reverse, Rows r) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G(), R = r.size();
  const bool save = A.gates != nullptr;
  const float* W_h = A.W_h + d * H * G;
  const float* h_prev = A.h0 + (d * B + r.begin) * H;
  const float* c_prev = A.c0 + (d * B + r.begin) * H;
  std::vector<const float*> x_rows(R), h_rows(R);
  std::vector<float*> z_rows(R);
  lstmkit::AlignedFloats scratch = lstmkit::aligned_floats(save ? 0 : R * G + 4 * R * H);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    float *gates, *h_out, *c_out;
    if (save) {
      gates = A.gates + ((d * T + s) * B + r.begin) * G;
      h_out = A.h_seq + ((d * T + s) * B + r.begin) * H;
      c_out = A.c_seq + ((d * T + s) * B + r.begin) * H;
    } else {  // alternate two (h, c) slots: step s reads slot s-1 and writes slot s
      gates = scratch.get();
      h_out = scratch.get() + R * G + (s % 2) * 2 * R * H;
      c_out = h_out + R * H;
    }
    // z = x_proj rows + h_prev W_h, only for the rows whose token is real at this step.
    int64_t M = 0;
    for (int64_t b = r.begin, l = 0; b < r.end; ++b, ++l) {
      if (!A.mask[b * T + t]) continue;
      if (n.V) {
        x_rows[M] = A.x_proj + (d * n.V + table_row(A.ids, b, t, n)) * G;
      } else {
        x_rows[M] = A.x_proj + ((d * B + b) * T + t) * G;
      }
      h_rows[M] = h_prev + l * H;
      z_rows[M++] = gates + l * G;
    }
    gemm(M, G, H, h_rows.data(), 1, W_h, G, x_rows.data(), z_rows.data());
    for (int64_t b = r.begin, l = 0; b < r.end; ++b, ++l) {
      float* hs_row = A.hs ? A.hs + ((d * B + b) * T + t) * H : nullptr;
      if (!A.mask[b * T + t]) {  // a masked step leaves the state as it was
        std::memcpy(h_out + l * H, h_prev + l * H, H * sizeof(float));
        std::memcpy(c_out + l * H, c_prev + l * H, H * sizeof(float));
        if (hs_row) std::memset(hs_row, 0, H * sizeof(float));
        continue;
      }
      float* z = gates + l * G;
      for (int64_t j = 0; j < H; j += 8) {
        v8 i = sigmoid8(load8(z + j));
        v8 f = sigmoid8(load8(z + H + j));
        v8 g = tanh8(load8(z + 2 * H + j));
        v8 o = sigmoid8(load8(z + 3 * H + j));
        v8 c = f * load8(c_prev + l * H + j) + i * g;  // keep part of the old memory, write part of the new
        v8 h = o * tanh8(c);
        if (save) store8(z + j, i), store8(z + H + j, f), store8(z + 2 * H + j, g), store8(z + 3 * H + j, o);
        store8(c_out + l * H + j, c), store8(h_out + l * H + j, h);
        if (hs_row) store8(hs_row + j, h);
      }
    }
    h_prev = h_out, c_prev = c_out;
  }
  std::memcpy(A.h_T + (d * B + r.begin) * H, h_prev, R * H * sizeof(float));
  std::memcpy(A.c_T + (d * B + r.begin) * H, c_prev, R * H * sizeof(float));
}

// Runs the forward of every direction, each cut into row blocks, on the pool.
static void forward_all(const ForwardArgs& A, int64_t reverse) {
  const int threads = lstmkit::kernel_threads();
  const int64_t blocks = blocks_per_direction(A.dims, threads);
  lstmkit::pool().run(A.dims.D * blocks, threads - 1, [&](int64_t task) {
    const int64_t d = task / blocks;
    forward_rows(A, d, (reverse >> d) & 1, row_block(A.dims, blocks, task % blocks));
  });
}

extern "C" {
// LSTMKIT_THREADS as lstmkit/core/fused.py read it (n >= 1), or 0: the CPUs this process may use.
__attribute__((visibility("default"))) void LstmkitSetThreads(int n) { lstmkit::g_threads.store(n < 0 ? 0 : n); }
__attribute__((visibility("default"))) int LstmkitThreads() { return lstmkit::kernel_threads(); }
// How many threads the process's pool has started: they are started once, not per call.
__attribute__((visibility("default"))) int LstmkitPoolThreads() { return lstmkit::pool().started(); }
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
  forward_all(A, reverse);
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
  backward_all(A, reverse);
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

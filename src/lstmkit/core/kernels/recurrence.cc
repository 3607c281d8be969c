// lstmkit's fused LSTM recurrence for the CPU: the forward and backward loops of
// lstmkit/bptt.py, each one XLA custom call (FFI) that runs all T steps itself.
//
// Why: under XLA every step of a `lax.scan` is a dozen small kernels dispatched one by one, and
// at B = 64, H = 64 that overhead is as large as the arithmetic. Here a step is one or two small
// GEMMs and one pass over the gates, over the rows whose token is real at that step only: padding
// computes nothing (a batch padded to 500 steps for 20-token texts costs a copy of the state per
// padded step, not a GEMM). The math is bptt.py's, line by line; tests/core/test_fused.py
// checks the two against each other.
//
// Threads: the rows of a batch never interact in an LSTM, so each direction's rows are cut into
// contiguous blocks and each block runs all T steps on its own, on a pool of threads started once
// per process (sized by lstmkit/core/fused.py: LSTMKIT_THREADS, else the CPUs the process may
// use). Threads meet only when a call ends, not at every step. The sums over the batch (dW_h, dW_x,
// db and the gathered table's gradient) are kept per block and added up afterwards in a fixed order,
// so a result depends on the number of threads, never on which thread ran what, or when.
//
// Shape legend: D directions, B batch, T time, E input features, V table rows, H hidden units, G = 4H.
// The input is a dense x (B, T, E), projected here by W_x (D, E, G) and b (D, G) on the real tokens
// only; or that projection x W_x + b (D, B, T, G), computed by XLA (faster when few steps are
// padding: one large GEMM); or token ids (B, T) into a table (D, V, G) of projected rows.
// Step s of a direction reads time t = s (forward) or t = T-1-s (reverse).
//
//   forward, per step (m = mask[b, t]):
//     z          = x_t W_x + b + h_prev W_h     (with a table, x_t W_x + b is the row ids[b, t])
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
//     dx         = dz W_x^T, dW_x += x_t^T dz, db += dz   (dense input; one dx per direction)
//     or: the projection's gradient = dz; or: row ids[b, t] of the table's gradient += dz

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
  const float *W_h, *W_x, *bias;  // W_x (D, E, G), bias (D, G): only for a dense input
  const float* x;                 // the table (D, V, G), the projection (D, B, T, G) or the input (B, T, E)
  const int32_t* ids;             // (B, T), only when gathering
  const bool* mask;               // (B, T)
  const float *h0, *c0;
  float *hs, *h_T, *c_T;         // hs null: the caller wants the final state only
  float *gates, *h_seq, *c_seq;  // the residuals for the backward; null when only predicting
};

// One direction's forward loop over rows r of the batch. When training it saves the activations
// [i f g o] (T, B, G) and the carried h, c (T, B, H) after each step, in scan order, for the
// backward loop; when only predicting it keeps two steps of each in scratch buffers instead.
// Pointers named for a (., B, .) buffer point at row r.begin, and are indexed by l = b - r.begin.
static void forward_rows(const ForwardArgs& A, int64_t d, bool reverse, Rows r) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G(), E = n.E, R = r.size();
  const bool save = A.gates != nullptr;
  const float* W_h = A.W_h + d * H * G;
  const float* W_x = n.E ? A.W_x + d * E * G : nullptr;
  const float* h_prev = A.h0 + (d * B + r.begin) * H;
  const float* c_prev = A.c0 + (d * B + r.begin) * H;
  std::vector<const float*> x_rows(R), h_rows(R), bias_rows(R, n.E ? A.bias + d * G : nullptr);
  std::vector<float*> z_rows(R);
  const float* const* z_in = z_rows.data();  // z is C0 and C of the second GEMM: it accumulates
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
    // z = x_t W_x + b + h_prev W_h, only for the rows whose token is real at this step: padding
    // costs no GEMM. A gathered row of the table is x_t W_x + b already.
    int64_t M = 0;
    for (int64_t b = r.begin, l = 0; b < r.end; ++b, ++l) {
      if (!A.mask[b * T + t]) continue;
      if (n.V) {
        x_rows[M] = A.x + (d * n.V + table_row(A.ids, b, t, n)) * G;
      } else {
        x_rows[M] = n.E ? A.x + (b * T + t) * E : A.x + ((d * B + b) * T + t) * G;
      }
      h_rows[M] = h_prev + l * H;
      z_rows[M++] = gates + l * G;
    }
    if (!n.E) {  // x_rows are rows of the projection already
      gemm(M, G, H, h_rows.data(), 1, W_h, G, x_rows.data(), z_rows.data());
    } else {
      gemm(M, G, E, x_rows.data(), 1, W_x, G, bias_rows.data(), z_rows.data());
      gemm(M, G, H, h_rows.data(), 1, W_h, G, z_in, z_rows.data());
    }
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

using F32 = ffi::Buffer<ffi::F32>;
using Out = ffi::ResultBuffer<ffi::F32>;

// The sizes, from W_h (D, H, G), the mask (B, T), and the input, in one of three forms: with ids
// (B, T), x is the table (D, V, G); with W_x (D, E, G), x is the dense input (B, T, E), which
// W_x and bias (D, G) project here; else x is the projection (D, B, T, G), computed by the caller
// (the backward does not read it then: the caller passes any array).
static ffi::Error read_dims(Dims& n, F32& W_h, F32& W_x, F32& bias, F32& x, ffi::Buffer<ffi::S32>& ids,
                            ffi::Buffer<ffi::PRED>& mask, bool backward) {
  auto wd = W_h.dimensions(), xd = x.dimensions(), md = mask.dimensions(), id = ids.dimensions();
  if (wd.size() != 3 || wd[2] != 4 * wd[1]) return ffi::Error::InvalidArgument("W_h must be (D, H, 4H)");
  if (md.size() != 2) return ffi::Error::InvalidArgument("mask must be (B, T)");
  n = Dims{wd[0], md[0], md[1], wd[1], 0, 0};
  if (n.H % 8) return ffi::Error::InvalidArgument("the fused kernel needs H to be a multiple of 8");
  if (id.size() == 2) {
    if (id[0] != n.B || id[1] != n.T) return ffi::Error::InvalidArgument("ids must be (B, T) like the mask");
    if (xd.size() != 3 || xd[0] != n.D || xd[2] != n.G()) return ffi::Error::InvalidArgument("the table must be (D, V, 4H)");
    n.V = xd[1];
    return ffi::Error::Success();
  }
  auto ed = W_x.dimensions(), bd = bias.dimensions();
  if (ed.size() != 3) {  // the caller projected the input
    if (!backward && (xd.size() != 4 || xd[0] != n.D || xd[1] != n.B || xd[2] != n.T || xd[3] != n.G()))
      return ffi::Error::InvalidArgument("the input projection must be (D, B, T, 4H)");
    return ffi::Error::Success();
  }
  if (xd.size() != 3 || xd[0] != n.B || xd[1] != n.T) return ffi::Error::InvalidArgument("the input must be (B, T, E)");
  n.E = xd[2];
  if (ed[0] != n.D || ed[1] != n.E || ed[2] != n.G()) return ffi::Error::InvalidArgument("W_x must be (D, E, 4H)");
  if (bd.size() != 2 || bd[0] != n.D || bd[1] != n.G()) return ffi::Error::InvalidArgument("b must be (D, 4H)");
  return ffi::Error::Success();
}

static ffi::Error Forward(F32 W_h, F32 W_x, F32 bias, F32 x, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::PRED> mask,
                          F32 h0, F32 c0, int64_t reverse, bool save, bool sequences, Out hs, Out h_T, Out c_T,
                          Out gates, Out h_seq, Out c_seq) {
  Dims n;
  if (auto err = read_dims(n, W_h, W_x, bias, x, ids, mask, false); err.failure()) return err;
  ForwardArgs A{n,
                W_h.typed_data(),
                n.E ? W_x.typed_data() : nullptr,
                n.E ? bias.typed_data() : nullptr,
                x.typed_data(),
                ids.typed_data(),
                mask.typed_data(),
                h0.typed_data(),
                c0.typed_data(),
                sequences ? hs->typed_data() : nullptr,
                h_T->typed_data(),
                c_T->typed_data(),
                save ? gates->typed_data() : nullptr,
                save ? h_seq->typed_data() : nullptr,
                save ? c_seq->typed_data() : nullptr};
  forward_all(A, reverse);
  return ffi::Error::Success();
}

static ffi::Error Backward(F32 W_h, F32 W_x, F32 bias, F32 x, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::PRED> mask,
                           F32 h0, F32 c0, F32 gates, F32 h_seq, F32 c_seq, F32 d_hs, F32 dh_T, F32 dc_T,
                           int64_t reverse, bool sequences, Out dW_h, Out dW_x, Out d_bias, Out dx, Out dh0,
                           Out dc0) {
  // x is what the forward read: the table (its gradient dx is (D, V, G)), the dense input (dx is
  // (D, B, T, E): each direction's part, which the caller adds up), or, for a projection, unread
  // (dx is the projection's gradient, (D, B, T, G)).
  Dims n;
  if (auto err = read_dims(n, W_h, W_x, bias, x, ids, mask, true); err.failure()) return err;
  BackwardArgs A{n,
                 W_h.typed_data(),
                 n.E ? W_x.typed_data() : nullptr,
                 n.E ? x.typed_data() : nullptr,
                 h0.typed_data(),
                 c0.typed_data(),
                 gates.typed_data(),
                 h_seq.typed_data(),
                 c_seq.typed_data(),
                 sequences ? d_hs.typed_data() : nullptr,
                 dh_T.typed_data(),
                 dc_T.typed_data(),
                 ids.typed_data(),
                 mask.typed_data(),
                 dW_h->typed_data(),
                 n.E ? dW_x->typed_data() : nullptr,
                 n.E ? d_bias->typed_data() : nullptr,
                 dx->typed_data(),
                 dh0->typed_data(),
                 dc0->typed_data()};
  backward_all(A, reverse);
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmkitRecurrenceForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()                     // W_h (D, H, G)
                                  .Arg<F32>()                     // W_x (D, E, G), or (0,): x is a table or projection
                                  .Arg<F32>()                     // b (D, G), or (0,) with a table
                                  .Arg<F32>()                     // x: table (D, V, G), projection (D, B, T, G) or (B, T, E)
                                  .Arg<ffi::Buffer<ffi::S32>>()   // ids (B, T), or (0,) for a dense input
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask (B, T)
                                  .Arg<F32>()                     // h0 (D, B, H)
                                  .Arg<F32>()                     // c0 (D, B, H)
                                  .Attr<int64_t>("reverse")       // bit d set: direction d reads last to first
                                  .Attr<bool>("save")             // write the residuals (else they are (0,))
                                  .Attr<bool>("sequences")        // write hs (else it is (0,))
                                  .Ret<F32>()                     // hs (D, B, T, H)
                                  .Ret<F32>()                     // h_T (D, B, H)
                                  .Ret<F32>()                     // c_T (D, B, H)
                                  .Ret<F32>()                     // gates (D, T, B, G), scan order
                                  .Ret<F32>()                     // h_seq (D, T, B, H), scan order
                                  .Ret<F32>());                   // c_seq (D, T, B, H), scan order

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmkitRecurrenceBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()                     // W_h
                                  .Arg<F32>()                     // W_x
                                  .Arg<F32>()                     // b
                                  .Arg<F32>()                     // x
                                  .Arg<ffi::Buffer<ffi::S32>>()   // ids
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask
                                  .Arg<F32>()                     // h0
                                  .Arg<F32>()                     // c0
                                  .Arg<F32>()                     // gates
                                  .Arg<F32>()                     // h_seq
                                  .Arg<F32>()                     // c_seq
                                  .Arg<F32>()                     // d_hs (D, B, T, H), or (0,)
                                  .Arg<F32>()                     // dh_T (D, B, H)
                                  .Arg<F32>()                     // dc_T (D, B, H)
                                  .Attr<int64_t>("reverse")
                                  .Attr<bool>("sequences")        // read d_hs
                                  .Ret<F32>()                     // dW_h (D, H, G)
                                  .Ret<F32>()                     // dW_x (D, E, G), or (0,) with a table
                                  .Ret<F32>()                     // db (D, G), or (0,) with a table
                                  .Ret<F32>()                     // dx: (D, V, G), (D, B, T, G) or (D, B, T, E), as x
                                  .Ret<F32>()                     // dh0 (D, B, H)
                                  .Ret<F32>());                   // dc0 (D, B, H)

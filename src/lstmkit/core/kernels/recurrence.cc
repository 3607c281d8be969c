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

#include "pool.h"
#include "simd.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// -- the loops -----------------------------------------------------------------------------------

struct Dims {
  int64_t D, B, T, H, V, E;  // V: table rows when the input is gathered; E: input features when projected here
  int64_t G() const { return 4 * H; }
  int64_t E8() const { return (E + 7) / 8 * 8; }  // E rounded up to whole vectors, for dx's GEMM
};

// The table row that token (b, t) reads: ids clipped to [0, V), as jnp.take(mode="clip").
static inline int64_t table_row(const int32_t* ids, int64_t b, int64_t t, const Dims& n) {
  int64_t id = ids[b * n.T + t];
  return id < 0 ? 0 : (id >= n.V ? n.V - 1 : id);
}

// A block of batch rows [begin, end) that one thread carries through all T steps.
struct Rows {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};

// How many row blocks each direction's batch is cut into: enough for every thread to have one
// (directions share the threads), never more than there are rows. A block starts on a 64-byte
// cache line in every (., B, H) buffer: its first row is a multiple of 16 / gcd(H, 16) (H is a
// multiple of 8, so 1 or 2), so no two threads write to one line.
static int64_t row_unit(const Dims& n) { return n.H % 16 ? 2 : 1; }

static int64_t blocks_per_direction(const Dims& n, int threads) {
  const int64_t units = (n.B + row_unit(n) - 1) / row_unit(n);
  return std::max<int64_t>(1, std::min<int64_t>(threads / std::max<int64_t>(n.D, 1), units));
}

static Rows row_block(const Dims& n, int64_t blocks, int64_t k) {
  const int64_t unit = row_unit(n), units = (n.B + unit - 1) / unit;
  return Rows{std::min(n.B, k * units / blocks * unit), std::min(n.B, (k + 1) * units / blocks * unit)};
}

// The transpose (cols, rows) of a row-major (rows, cols) matrix, with ld columns (ld >= rows; the
// extra ones 0): a copy per block, in the cache of the core that reads it.
static lstmkit::AlignedFloats transposed(const float* W, int64_t rows, int64_t cols, int64_t ld) {
  lstmkit::AlignedFloats W_T = lstmkit::aligned_floats(cols * ld);
  std::memset(W_T.get(), 0, cols * ld * sizeof(float));
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t j = 0; j < cols; ++j) W_T[j * ld + k] = W[k * cols + j];
  return W_T;
}

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

struct BackwardArgs {
  Dims dims;
  const float *W_h, *W_x, *x, *h0, *c0, *gates, *h_seq, *c_seq;  // W_x, x: only for a dense input
  const float *d_hs, *dh_T, *dc_T;  // d_hs null: only the final state was used
  const int32_t* ids;
  const bool* mask;
  float *dW_h, *dW_x, *d_bias, *dx, *dh0, *dc0;  // dx: the table's (D, V, G), the projection's (D, B, T, G) or (D, B, T, E)
};

// Where one block of rows puts the sums over the batch: dW_h (H, G), and for a dense input dW_x
// (E, G) and d_bias (G), its own; and, when the input is gathered, either the table itself (the
// block is the direction's only one) or dz for every step (T, B, G; each block's unmasked rows
// packed from its first row on), which `sum_blocks` adds into the table afterwards.
struct BlockSums {
  float *dW_h, *dW_x, *d_bias;
  float* dz_steps;  // null: add dz into the table rows as it goes
};

// One direction's backward loop over rows r, the forward bottom-up (the header's equations).
static void backward_rows(const BackwardArgs& A, int64_t d, bool reverse, Rows r, BlockSums out) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G(), E = n.E, E8 = n.E8(), R = r.size();
  // W_h^T (G, H) and W_x^T (G, E8), so that dz W^T are row-major GEMMs like the forward's.
  lstmkit::AlignedFloats W_h_T = transposed(A.W_h + d * H * G, H, G, H);
  lstmkit::AlignedFloats W_x_T = transposed(n.E ? A.W_x + d * E * G : nullptr, E, G, E8);
  float* dh = A.dh0 + (d * B + r.begin) * H;  // the carried dh, dc live in the outputs dh0, dc0
  float* dc = A.dc0 + (d * B + r.begin) * H;
  std::memcpy(dh, A.dh_T + (d * B + r.begin) * H, R * H * sizeof(float));
  std::memcpy(dc, A.dc_T + (d * B + r.begin) * H, R * H * sizeof(float));
  std::memset(out.dW_h, 0, H * G * sizeof(float));
  if (n.E) std::memset(out.dW_x, 0, E * G * sizeof(float)), std::memset(out.d_bias, 0, G * sizeof(float));
  const bool scatter_now = n.V && !out.dz_steps;
  if (scatter_now) std::memset(A.dx + d * n.V * G, 0, n.V * G * sizeof(float));
  lstmkit::AlignedFloats dz_block = lstmkit::aligned_floats(out.dz_steps ? 0 : R * G);
  lstmkit::AlignedFloats h_real = lstmkit::aligned_floats(R * H);  // h_prev of the unmasked rows
  lstmkit::AlignedFloats x_real = lstmkit::aligned_floats(R * E);  // their inputs (E = 0 unless projecting)
  lstmkit::AlignedFloats dx_real = lstmkit::aligned_floats(R * E8);  // their dx, E8 wide
  std::vector<int64_t> real(R);  // the unmasked rows at this step, in order: dz row m is row real[m]'s
  std::vector<const float*> dz_rows(R), h_prev_cols(H), x_cols(E);
  std::vector<float*> dh_rows(R), dx_rows(R), dW_rows(H), dW_x_rows(E);
  for (int64_t k = 0; k < H; ++k) dW_rows[k] = out.dW_h + k * G;
  for (int64_t k = 0; k < E; ++k) dW_x_rows[k] = out.dW_x + k * G, x_cols[k] = x_real.get() + k;
  for (int64_t m = 0; m < R && n.E; ++m) dx_rows[m] = dx_real.get() + m * E8;
  const float* const* dW_rows_in = dW_rows.data();  // dW_h is both C0 and C: it accumulates
  const float* const* dW_x_rows_in = dW_x_rows.data();
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t row0 = (d * T + s) * B + r.begin, prev0 = (d * T + s - 1) * B + r.begin;
    const float* gates = A.gates + row0 * G;
    const float* c_seq = A.c_seq + row0 * H;
    const float* c_prev = s ? A.c_seq + prev0 * H : A.c0 + (d * B + r.begin) * H;
    const float* h_prev = s ? A.h_seq + prev0 * H : A.h0 + (d * B + r.begin) * H;
    // dz of the unmasked rows only, packed: a masked row's dz is 0 and dh, dc pass through, so
    // padding costs no GEMM (a batch padded to 500 steps for 20-token texts).
    float* dz = out.dz_steps ? out.dz_steps + (s * B + r.begin) * G : dz_block.get();
    int64_t M = 0;
    for (int64_t b = r.begin, l = 0; b < r.end; ++b, ++l) {
      if (!A.mask[b * T + t]) continue;
      float* dz_b = dz + M * G;
      const float* a = gates + l * G;
      const float* d_hs = A.d_hs ? A.d_hs + ((d * B + b) * T + t) * H : nullptr;
      for (int64_t j = 0; j < H; j += 8) {
        v8 i = load8(a + j), f = load8(a + H + j), g = load8(a + 2 * H + j), o = load8(a + 3 * H + j);
        v8 dh_j = d_hs ? load8(dh + l * H + j) + load8(d_hs + j) : load8(dh + l * H + j);
        v8 tanh_c = tanh8(load8(c_seq + l * H + j));
        v8 d_o = dh_j * tanh_c;
        v8 dc_tot = load8(dc + l * H + j) + dh_j * o * (1.0f - tanh_c * tanh_c);
        store8(dz_b + j, dc_tot * g * i * (1.0f - i));
        store8(dz_b + H + j, dc_tot * load8(c_prev + l * H + j) * f * (1.0f - f));
        store8(dz_b + 2 * H + j, dc_tot * i * (1.0f - g * g));
        store8(dz_b + 3 * H + j, d_o * o * (1.0f - o));
        store8(dc + l * H + j, dc_tot * f);
      }
      real[M] = l;
      dz_rows[M] = dz_b;
      dh_rows[M++] = dh + l * H;
    }
    const int64_t width = n.E ? E : G;  // a dense input's (B, T, E), or its projection's (B, T, G)
    if (!n.V)  // the dense input's gradient is 0 on masked steps; the unmasked rows get theirs below
      for (int64_t b = r.begin; b < r.end; ++b)
        if (!A.mask[b * T + t]) std::memset(A.dx + ((d * B + b) * T + t) * width, 0, width * sizeof(float));
    if (M == 0) continue;
    gemm(M, H, G, dz_rows.data(), 1, W_h_T.get(), H, nullptr, dh_rows.data());  // dh_prev = dz W_h^T
    const float* h_prev_real = h_prev;  // the unmasked rows' h_prev, packed like dz
    if (M < R) {
      for (int64_t m = 0; m < M; ++m) std::memcpy(h_real.get() + m * H, h_prev + real[m] * H, H * sizeof(float));
      h_prev_real = h_real.get();
    }
    for (int64_t k = 0; k < H; ++k) h_prev_cols[k] = h_prev_real + k;
    gemm(H, G, M, h_prev_cols.data(), H, dz, G, dW_rows_in, dW_rows.data());  // dW_h += h_prev^T dz
    if (n.E) {
      gemm(M, E8, G, dz_rows.data(), 1, W_x_T.get(), E8, nullptr, dx_rows.data());  // dx = dz W_x^T
      for (int64_t m = 0; m < M; ++m) {
        const float* x_t = A.x + ((r.begin + real[m]) * T + t) * E;
        std::memcpy(x_real.get() + m * E, x_t, E * sizeof(float));
        std::memcpy(A.dx + ((d * B + r.begin + real[m]) * T + t) * E, dx_real.get() + m * E8, E * sizeof(float));
      }
      gemm(E, G, M, x_cols.data(), E, dz, G, dW_x_rows_in, dW_x_rows.data());  // dW_x += x_t^T dz
      for (int64_t m = 0; m < M; ++m)  // d_bias += dz, row by row
        for (int64_t j = 0; j < G; j += 8) store8(out.d_bias + j, load8(out.d_bias + j) + load8(dz + m * G + j));
    } else if (!n.V) {  // the projection's gradient is dz itself
      for (int64_t m = 0; m < M; ++m)
        std::memcpy(A.dx + ((d * B + r.begin + real[m]) * T + t) * G, dz + m * G, G * sizeof(float));
    }
    if (scatter_now) {  // the gathered table row gets the sum of dz over the steps that read it
      for (int64_t m = 0; m < M; ++m) {
        float* row = A.dx + (d * n.V + table_row(A.ids, r.begin + real[m], t, n)) * G;
        for (int64_t j = 0; j < G; j += 8) store8(row + j, load8(row + j) + load8(dz + m * G + j));
      }
    }
  }
}

// out[i] += part[i] for i in [begin, end), a multiple of 8 apart.
static void add_into(float* out, const float* part, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 8) store8(out + i, load8(out + i) + load8(part + i));
}

// Part p of P of adding up a direction's blocks: rows [p H / P, (p+1) H / P) of dW_h (and of
// dW_x's E rows, and part 0 adds d_bias), block 0's (in the output) + block 1's + ..., in that
// order; and the same share of the table's rows, each the sum of dz over the steps and rows that
// read it, in the order the one-block loop adds them (steps from last to first, rows in order),
// so the table's gradient does not depend on blocks.
static void sum_blocks(const BackwardArgs& A, int64_t d, bool reverse, const std::vector<BlockSums>& blocks,
                       int64_t p, int64_t P) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G(), E = n.E;
  for (size_t k = 1; k < blocks.size(); ++k) {
    add_into(blocks[0].dW_h, blocks[k].dW_h, p * H / P * G, (p + 1) * H / P * G);
    if (n.E) {
      add_into(blocks[0].dW_x, blocks[k].dW_x, p * E / P * G, (p + 1) * E / P * G);
      if (p == 0) add_into(blocks[0].d_bias, blocks[k].d_bias, 0, G);
    }
  }
  if (!n.V) return;
  const int64_t v0 = p * n.V / P, v1 = (p + 1) * n.V / P;
  float* table = A.dx + d * n.V * G;
  std::memset(table + v0 * G, 0, (v1 - v0) * G * sizeof(float));
  const int64_t n_blocks = static_cast<int64_t>(blocks.size());
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    for (int64_t k = 0; k < n_blocks; ++k) {  // block k packs its unmasked rows' dz from its first row on
      const Rows r = row_block(n, n_blocks, k);
      const float* dz_b = blocks[0].dz_steps + (s * B + r.begin) * G;
      for (int64_t b = r.begin; b < r.end; ++b) {
        if (!A.mask[b * T + t]) continue;
        const int64_t v = table_row(A.ids, b, t, n);
        if (v >= v0 && v < v1) add_into(table + v * G, dz_b, 0, G);
        dz_b += G;
      }
    }
  }
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

// Runs the backward of every direction in row blocks on the pool, then adds up the blocks' sums
// (as many parts per direction as blocks, again on the pool). One block per direction (one
// thread per direction, or fewer) writes straight into the outputs, as a plain loop would.
static void backward_all(const BackwardArgs& A, int64_t reverse) {
  const Dims& n = A.dims;
  const int threads = lstmkit::kernel_threads();
  const int64_t blocks = blocks_per_direction(n, threads), HG = n.H * n.G(), EG = n.E * n.G(), G = n.G();
  const int64_t part = HG + EG + (n.E ? G : 0);  // one block's dW_h, dW_x and d_bias
  const bool split = blocks > 1;
  lstmkit::AlignedFloats parts = lstmkit::aligned_floats(split ? n.D * (blocks - 1) * part : 0);
  lstmkit::AlignedFloats dz_steps = lstmkit::aligned_floats(split && n.V ? n.D * n.T * n.B * G : 0);
  std::vector<std::vector<BlockSums>> sums(n.D);
  for (int64_t d = 0; d < n.D; ++d) {
    float* dz = split && n.V ? dz_steps.get() + d * n.T * n.B * G : nullptr;
    sums[d].push_back({A.dW_h + d * HG, n.E ? A.dW_x + d * EG : nullptr, n.E ? A.d_bias + d * G : nullptr, dz});
    for (int64_t k = 1; k < blocks; ++k) {
      float* mine = parts.get() + (d * (blocks - 1) + k - 1) * part;
      sums[d].push_back({mine, n.E ? mine + HG : nullptr, n.E ? mine + HG + EG : nullptr, dz});
    }
  }
  auto& pool = lstmkit::pool();
  pool.run(n.D * blocks, threads - 1, [&](int64_t task) {
    const int64_t d = task / blocks, k = task % blocks;
    backward_rows(A, d, (reverse >> d) & 1, row_block(n, blocks, k), sums[d][k]);
  });
  if (!split) return;
  pool.run(n.D * blocks, threads - 1, [&](int64_t task) {
    const int64_t d = task / blocks;
    sum_blocks(A, d, (reverse >> d) & 1, sums[d], task % blocks, blocks);
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

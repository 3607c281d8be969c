// The backward loop: the forward (recurrence.cc) read bottom-up, carrying dh and dc, with the
// sums over the batch kept per block of rows and added up in a fixed order. The equations are
// in recurrence.cc's header. Included by recurrence.cc (one translation unit).

#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pool.h"
#include "rows.h"
#include "simd.h"

struct BackwardArgs {
  Dims dims;
  const float *W_h, *h0, *c0, *gates, *h_seq, *c_seq;
  const float *d_hs, *dh_T, *dc_T;  // d_hs null: only the final state was used
  const int32_t* ids;
  const bool* mask;
  float *dW_h, *dx_proj, *dh0, *dc0;  // dx_proj: table (D, V, G) or dense (D, B, T, G)
};

// Where one block of rows puts the sums over the batch: dW_h (H, G), its own; and, when the input
// is gathered, either the table itself (the block is the direction's only one) or dz for every
// step (T, B, G; each block's unmasked rows packed from its first row on), which `sum_blocks`
// adds into the table afterwards.
struct BlockSums {
  float* dW_h;
  float* dz_steps;  // null: add dz into the table rows as it goes
};

// One direction's backward loop over rows r, the forward bottom-up (the header's equations).
static void backward_rows(const BackwardArgs& A, int64_t d, bool reverse, Rows r, BlockSums out) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G(), R = r.size();
  // W_h^T (G, H), so that dz W_h^T is a row-major GEMM like the forward's; a copy per block, in
  // the cache of the core that reads it.
  lstmkit::AlignedFloats W_h_T = lstmkit::aligned_floats(G * H);
  const float* W_h = A.W_h + d * H * G;
  for (int64_t k = 0; k < H; ++k)
    for (int64_t j = 0; j < G; ++j) W_h_T[j * H + k] = W_h[k * G + j];
  float* dh = A.dh0 + (d * B + r.begin) * H;  // the carried dh, dc live in the outputs dh0, dc0
  float* dc = A.dc0 + (d * B + r.begin) * H;
  std::memcpy(dh, A.dh_T + (d * B + r.begin) * H, R * H * sizeof(float));
  std::memcpy(dc, A.dc_T + (d * B + r.begin) * H, R * H * sizeof(float));
  std::memset(out.dW_h, 0, H * G * sizeof(float));
  const bool scatter_now = n.V && !out.dz_steps;
  if (scatter_now) std::memset(A.dx_proj + d * n.V * G, 0, n.V * G * sizeof(float));
  lstmkit::AlignedFloats dz_block = lstmkit::aligned_floats(out.dz_steps ? 0 : R * G);
  lstmkit::AlignedFloats h_real = lstmkit::aligned_floats(R * H);  // h_prev of the unmasked rows
  std::vector<int64_t> real(R);  // the unmasked rows at this step, in order: dz row m is row real[m]'s
  std::vector<const float*> dz_rows(R), h_prev_cols(H);
  std::vector<float*> dh_rows(R), dW_rows(H);
  for (int64_t k = 0; k < H; ++k) dW_rows[k] = out.dW_h + k * G;
  const float* const* dW_rows_in = dW_rows.data();  // dW_h is both C0 and C: it accumulates
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t row0 = (d * T + s) * B + r.begin, prev0 = (d * T + s - 1) * B + r.begin;
    const float* gates = A.gates + row0 * G;
    const float* c_seq = A.c_seq + row0 * H;
    const float* c_prev = s ? A.c_seq + prev0 * H : A.c0 + (d * B + r.begin) * H;
    const float* h_prev = s ? A.h_seq + prev0 * H : A.h0 + (d * B + r.begin) * H;
    // dz of the unmasked rows only, packed: a masked row's dz is 0 and dh, dc pass through, so
    // padding costs neither GEMM anything (a batch padded to 500 steps for 20-token texts).
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
    if (!n.V) {  // the dense input's gradient: dz on unmasked steps (packed in row order), 0 on masked ones
      const float* dz_next = dz;
      for (int64_t b = r.begin; b < r.end; ++b) {
        float* dx_row = A.dx_proj + ((d * B + b) * T + t) * G;
        if (A.mask[b * T + t]) {
          std::memcpy(dx_row, dz_next, G * sizeof(float));
          dz_next += G;
        } else {
          std::memset(dx_row, 0, G * sizeof(float));
        }
      }
    }
    if (M == 0) continue;
    gemm(M, H, G, dz_rows.data(), 1, W_h_T.get(), H, nullptr, dh_rows.data());  // dh_prev = dz W_h^T
    const float* h_prev_real = h_prev;  // the unmasked rows' h_prev, packed like dz
    if (M < R) {
      for (int64_t m = 0; m < M; ++m) std::memcpy(h_real.get() + m * H, h_prev + real[m] * H, H * sizeof(float));
      h_prev_real = h_real.get();
    }
    for (int64_t k = 0; k < H; ++k) h_prev_cols[k] = h_prev_real + k;
    gemm(H, G, M, h_prev_cols.data(), H, dz, G, dW_rows_in, dW_rows.data());  // dW_h += h_prev^T dz
    if (scatter_now) {  // the gathered table row gets the sum of dz over the steps that read it
      for (int64_t m = 0; m < M; ++m) {
        float* row = A.dx_proj + (d * n.V + table_row(A.ids, r.begin + real[m], t, n)) * G;
        for (int64_t j = 0; j < G; j += 8) store8(row + j, load8(row + j) + load8(dz + m * G + j));
      }
    }
  }
}

// Part p of P of adding up a direction's blocks: rows [p H / P, (p+1) H / P) of dW_h, block 0's
// (in the output) + block 1's + ..., in that order; and the same share of the table's rows, each
// the sum of dz over the steps and rows that read it, in the order the one-block loop adds them
// (steps from last to first, rows in order), so the table's gradient does not depend on blocks.
static void sum_blocks(const BackwardArgs& A, int64_t d, bool reverse, const std::vector<BlockSums>& blocks,
                       int64_t p, int64_t P) {
  const Dims& n = A.dims;
  const int64_t B = n.B, T = n.T, H = n.H, G = n.G();
  float* dW_h = blocks[0].dW_h;
  for (size_t k = 1; k < blocks.size(); ++k) {
    const float* part = blocks[k].dW_h;
    for (int64_t i = p * H / P * G; i < (p + 1) * H / P * G; i += 8) store8(dW_h + i, load8(dW_h + i) + load8(part + i));
  }
  if (!n.V) return;
  const int64_t v0 = p * n.V / P, v1 = (p + 1) * n.V / P;
  float* table = A.dx_proj + d * n.V * G;
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
        if (v >= v0 && v < v1) {
          float* row = table + v * G;
          for (int64_t j = 0; j < G; j += 8) store8(row + j, load8(row + j) + load8(dz_b + j));
        }
        dz_b += G;
      }
    }
  }
}

// Runs the backward of every direction in row blocks on the pool, then adds up the blocks' sums
// (as many parts per direction as blocks, again on the pool). One block per direction (one
// thread per direction, or fewer) writes straight into the outputs, as a plain loop would.
static void backward_all(const BackwardArgs& A, int64_t reverse) {
  const Dims& n = A.dims;
  const int threads = lstmkit::kernel_threads();
  const int64_t blocks = blocks_per_direction(n, threads), HG = n.H * n.G();
  const bool split = blocks > 1;
  lstmkit::AlignedFloats dW_parts = lstmkit::aligned_floats(split ? n.D * (blocks - 1) * HG : 0);
  lstmkit::AlignedFloats dz_steps = lstmkit::aligned_floats(split && n.V ? n.D * n.T * n.B * n.G() : 0);
  std::vector<std::vector<BlockSums>> sums(n.D);
  for (int64_t d = 0; d < n.D; ++d) {
    float* dz = split && n.V ? dz_steps.get() + d * n.T * n.B * n.G() : nullptr;
    sums[d].push_back({A.dW_h + d * HG, dz});
    for (int64_t k = 1; k < blocks; ++k) sums[d].push_back({dW_parts.get() + (d * (blocks - 1) + k - 1) * HG, dz});
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

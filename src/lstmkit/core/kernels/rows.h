// The sizes of a call and how a direction's batch rows are cut into blocks, one per thread.
// Included by recurrence.cc (one translation unit), before the forward and backward loops.

#pragma once

#include <algorithm>
#include <cstdint>

struct Dims {
  int64_t D, B, T, H, V;  // V = table rows when the input is gathered, else 0
  int64_t G() const { return 4 * H; }
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

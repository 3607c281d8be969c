// Times the parts of lstmkit's fused recurrence (src/lstmkit/core/kernels/recurrence.cc) in C++ alone,
// without JAX: where a step's time goes, and how close the small GEMM is to the core's peak.
//
// Build and run from the repository root (the XLA FFI headers come with jaxlib):
//
//   g++ -O3 -march=native -std=c++17 -ffp-contract=fast -pthread \
//       -isystem "$(.venv/bin/python -c 'import jax.ffi; print(jax.ffi.include_dir())')" \
//       benchmarks/bench_kernel.cc -o /tmp/bench_kernel && /tmp/bench_kernel
//
// `/tmp/bench_kernel threads` times a training step's loops on 1 and 2 threads instead.
//
// The flags are lstmkit.fused.FLAGS. It prints the median of 7 runs of each part for the seed's
// BiLSTM(64): B = 64 (training) or 256 (prediction), T = 200, a 100-row table, all tokens real.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "../src/lstmkit/core/kernels/recurrence.cc"

template <typename Fn>
static double median_ms(Fn fn, int runs = 7) {
  std::vector<double> ms;
  fn();  // warm up caches and pages
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The GEMM's ceiling on this core: one block of the kernel's shape (6 rows x 32 columns with
// AVX-512's 32 registers, else x 16) with K = 64, every operand in L1.
#ifdef __AVX512F__
constexpr int kVectors = 4;
#else
constexpr int kVectors = 2;
#endif

static void l1_peak() {
  const int M = 6, K = 64, N = 8 * kVectors, reps = 200000;
  std::vector<float> A(M * K, 0.01f), W(K * N, 0.02f), C(M * N, 0.0f);
  std::vector<const float*> a(M), c_in(M);
  std::vector<float*> c_out(M);
  for (int r = 0; r < M; ++r) a[r] = A.data() + r * K, c_in[r] = c_out[r] = C.data() + r * N;
  double ms = median_ms([&] { for (int i = 0; i < reps; ++i) gemm_block<6, kVectors>(K, a.data(), 1, W.data(), N, c_in.data(), c_out.data(), 0); });
  std::printf("GEMM block 6 x %d x 64, operands in L1: %.0f GFLOP/s\n", N, 2.0 * M * N * K * reps / (ms * 1e-3) / 1e9);
}

// A training step's loops (forward, then backward) of an LSTM(128) and a BiLSTM(128) over a dense
// input, B = 64, T = 200, on 1 thread and on 2 (each direction's rows in blocks), taken in turn.
static void thread_scaling() {
  const int64_t B = 64, T = 200, H = 128, G = 4 * H;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  for (int64_t D : {1, 2}) {
    std::vector<float> W_h(D * H * G), x_proj(D * B * T * G), h0(D * B * H, 0.0f), c0(D * B * H, 0.0f);
    std::vector<float> hs(D * B * T * H), h_T(D * B * H), c_T(D * B * H);
    std::vector<float> gates(D * T * B * G), h_seq(D * T * B * H), c_seq(D * T * B * H);
    std::vector<float> d_hs(D * B * T * H), dW_h(D * H * G), dx_proj(D * B * T * G), dh0(D * B * H), dc0(D * B * H);
    std::vector<char> mask(B * T, 1);
    for (auto& v : W_h) v = normal(rng);
    for (auto& v : x_proj) v = normal(rng);
    for (auto& v : d_hs) v = normal(rng);
    const bool* m = reinterpret_cast<const bool*>(mask.data());
    Dims n{D, B, T, H, 0};
    ForwardArgs fwd{n, W_h.data(), x_proj.data(), h0.data(), c0.data(), nullptr, m, hs.data(), h_T.data(),
                    c_T.data(), gates.data(), h_seq.data(), c_seq.data()};
    BackwardArgs back{n, W_h.data(), h0.data(), c0.data(), gates.data(), h_seq.data(), c_seq.data(), d_hs.data(),
                      h_T.data(), c_T.data(), nullptr, m, dW_h.data(), dx_proj.data(), dh0.data(), dc0.data()};
    std::vector<double> ms[2];
    for (int round = 0; round < 7; ++round)
      for (int threads : {1, 2}) {
        lstmkit::g_threads = threads;
        ms[threads - 1].push_back(median_ms([&] { forward_all(fwd, 0b10), backward_all(back, 0b10); }, 1));
      }
    for (auto& v : ms) std::sort(v.begin(), v.end());
    std::printf("%s(128), B=64, T=200, forward + backward: 1 thread %.1f ms, 2 threads %.1f ms, %.2fx\n",
                D == 1 ? "LSTM" : "BiLSTM", ms[0][3], ms[1][3], ms[0][3] / ms[1][3]);
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "threads") return thread_scaling(), 0;
  const int64_t D = 2, T = 200, H = 64, V = 100, G = 4 * H;
  l1_peak();
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  for (int64_t B : {64, 256}) {
    std::vector<float> W_h(D * H * G), table(D * V * G), h0(D * B * H, 0.0f), c0(D * B * H, 0.0f);
    std::vector<float> hs(D * B * T * H), h_T(D * B * H), c_T(D * B * H);
    std::vector<float> gates(D * T * B * G), h_seq(D * T * B * H), c_seq(D * T * B * H);
    std::vector<float> d_hs(D * B * T * H), dW_h(D * H * G), d_table(D * V * G), dh0(D * B * H), dc0(D * B * H);
    std::vector<int32_t> ids(B * T);
    std::vector<char> mask(B * T, 1);
    for (auto& v : W_h) v = normal(rng);
    for (auto& v : table) v = normal(rng);
    for (auto& v : d_hs) v = normal(rng);
    for (auto& id : ids) id = rng() % V;
    const bool* m = reinterpret_cast<const bool*>(mask.data());
    Dims n{D, B, T, H, V};
    ForwardArgs train{n, W_h.data(), table.data(), h0.data(), c0.data(), ids.data(), m, hs.data(), h_T.data(),
                      c_T.data(), gates.data(), h_seq.data(), c_seq.data()};
    ForwardArgs predict = train;
    predict.hs = nullptr, predict.gates = predict.h_seq = predict.c_seq = nullptr;
    BackwardArgs back{n, W_h.data(), h0.data(), c0.data(), gates.data(), h_seq.data(), c_seq.data(), d_hs.data(),
                      h_T.data(), c_T.data(), ids.data(), m, dW_h.data(), d_table.data(), dh0.data(), dc0.data()};

    // One step's recurrent GEMM, h_prev (B, H) x W_h (H, G) plus the gathered rows, 200 times.
    std::vector<const float*> a(B), c_in(B);
    std::vector<float*> c_out(B);
    for (int64_t b = 0; b < B; ++b) a[b] = h_seq.data() + b * H, c_in[b] = table.data() + (b % V) * G, c_out[b] = gates.data() + b * G;
    double gemm_ms = median_ms([&] { for (int s = 0; s < T; ++s) gemm(B, G, H, a.data(), 1, W_h.data(), G, c_in.data(), c_out.data()); });
    double tanh_ms = median_ms([&] {
      for (int s = 0; s < T; ++s)
        for (int64_t j = 0; j < B * G; j += 8) store8(gates.data() + j, tanh8(load8(gates.data() + j)));
    });
    lstmkit::g_threads = 2;  // both directions at once: the pool's two threads, a block each
    const Rows all{0, B};
    BlockSums own{dW_h.data(), nullptr};
    double fwd1 = median_ms([&] { forward_rows(train, 0, false, all); });
    double fwd2 = median_ms([&] { forward_all(train, 0b10); });
    double pred2 = median_ms([&] { forward_all(predict, 0b10); });
    double bwd1 = median_ms([&] { backward_rows(back, 0, false, all, own); });
    double bwd2 = median_ms([&] { backward_all(back, 0b10); });
    double gflops = 2.0 * B * H * G * T / (gemm_ms * 1e-3) / 1e9;
    std::printf("B=%ld, T=%ld, H=%ld (times for all %ld steps, ms):\n", B, T, H, T);
    std::printf("  recurrent GEMM alone       %7.2f  (%.0f GFLOP/s)\n", gemm_ms, gflops);
    std::printf("  tanh of B x 4H, alone      %7.2f\n", tanh_ms);
    std::printf("  forward, one direction     %7.2f   both on two threads %7.2f   (prediction, no residuals: %.2f)\n", fwd1, fwd2, pred2);
    std::printf("  backward, one direction    %7.2f   both on two threads %7.2f\n", bwd1, bwd2);
  }
  return 0;
}

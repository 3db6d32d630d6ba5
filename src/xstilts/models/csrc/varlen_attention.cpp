// Inference attention over variable-length sequences stored end to end ([tokens, heads * d], the
// unpadded layout of models/unpadding.py): softmax(q k^T * scale) v per sequence and head, keys of
// other sequences and padding never touched. Loaded by xstilts/models/attention_kernel.py (built at
// first use); that module says why and when it is used.
//
// Each (sequence, head) is one work item: its keys are widened to fp32 and transposed, its values
// widened, and four query rows at a time get their scores (a vector of keys at a time), an fp32 softmax
// (max-subtracted, a polynomial exp) and their weighted sum of values, all in fp32; the output is
// rounded to the input's type (round to nearest even for bf16). No autograd, no dropout.
//
// Compiled three times and chosen once per process by what the CPU has (isa()): AVX-512 (16-lane
// vectors), AVX2 with FMA (8 lanes) and the compiler's baseline (4 lanes). Each build uses vectors of
// its own width: 16-lane code built for AVX2 kept its vectors on the stack and ran at a tenth of
// the AVX2 build's speed, slower than PyTorch's SDPA (benchmarks/RESULTS.md).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

#define INLINE inline __attribute__((always_inline))

// W-lane float and int32 vectors (GCC/Clang vector extensions). W must be the build's native width:
// wider generic vectors are split by the compiler into halves kept on the stack, which made an AVX2
// build of 16-lane code several times slower than PyTorch's attention.
template <int W> struct Lanes;
template <> struct Lanes<16> {
  typedef float f __attribute__((vector_size(64)));
  typedef int32_t i __attribute__((vector_size(64)));
};
template <> struct Lanes<8> {
  typedef float f __attribute__((vector_size(32)));
  typedef int32_t i __attribute__((vector_size(32)));
};
template <> struct Lanes<4> {
  typedef float f __attribute__((vector_size(16)));
  typedef int32_t i __attribute__((vector_size(16)));
};

template <typename V> INLINE V load(const float* p) { V r; std::memcpy(&r, p, sizeof(V)); return r; }
template <typename V> INLINE void store(float* p, V x) { std::memcpy(p, &x, sizeof(V)); }
template <typename V> INLINE V splat(float x) { return V{} + x; }

// exp(x) for x <= 0: 2^(x log2 e) split into 2^k * 2^f, 2^f by a degree-6 polynomial on [0, 1)
// (relative error ~2e-7); below -87 it returns exp(-87) ~ 1.6e-38, which the caller zeroes where it
// matters (padding lanes)
template <typename V, typename VI>
INLINE V exp_neg(V x) {
  x = x < -87.0f ? splat<V>(-87.0f) : x;
  const V t = x * 1.44269504088896341f;
  VI k = __builtin_convertvector(t, VI);  // toward zero
  k += (VI)(__builtin_convertvector(k, V) > t);  // -1 where that rounded up: floor
  const V f = t - __builtin_convertvector(k, V);
  V p = splat<V>(1.535336188319500e-4f);
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  VI bits;
  std::memcpy(&bits, &p, sizeof(V));
  bits += k << 23;
  V r;
  std::memcpy(&r, &bits, sizeof(V));
  return r;
}

INLINE float widen(float x) { return x; }
INLINE float widen(c10::BFloat16 x) {
  uint16_t u;
  std::memcpy(&u, &x, 2);
  const uint32_t w = uint32_t(u) << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}
INLINE void narrow(float* p, float x) { *p = x; }
INLINE void narrow(c10::BFloat16* p, float x) {  // round to nearest even, as c10::BFloat16 (x finite)
  uint32_t w;
  std::memcpy(&w, &x, 4);
  w += 0x7FFFu + ((w >> 16) & 1u);
  const uint16_t u = uint16_t(w >> 16);
  std::memcpy(p, &u, 2);
}

constexpr int R = 4;  // query rows per block: their scores share each loaded key vector

struct Scratch {
  std::vector<float> kt, vf, s, qf;
  explicit Scratch(int64_t npad, int64_t d) : kt(d * npad), vf(npad * d), s(R * npad), qf(R * d) {}
};

// one sequence and head: n rows of q, k, v starting at the given pointers, row strides qs, ks, vs, os;
// W keys (or value columns) per vector
template <typename T, int D, int W>
INLINE void one_head(const T* q, const T* k, const T* v, T* o, int64_t qs, int64_t ks, int64_t vs, int64_t os,
                     int64_t n, float scale, Scratch& w) {
  typedef typename Lanes<W>::f V;
  typedef typename Lanes<W>::i VI;
  const int64_t npad = (n + W - 1) / W * W, blocks = npad / W;
  float* kt = w.kt.data();
  float* vf = w.vf.data();
  float* s = w.s.data();
  float* qf = w.qf.data();
  for (int64_t j = 0; j < n; ++j)
    for (int d = 0; d < D; ++d) {
      kt[d * npad + j] = widen(k[j * ks + d]);
      vf[j * D + d] = widen(v[j * vs + d]);
    }
  for (int d = 0; d < D; ++d)
    for (int64_t j = n; j < npad; ++j) kt[d * npad + j] = 0.f;
  VI lane;
  for (int l = 0; l < W; ++l) lane[l] = l;
  const VI valid = lane < VI{} + int32_t(n - (blocks - 1) * W);  // real keys in the last block
  for (int64_t i0 = 0; i0 < n; i0 += R) {
    const int rows = int(std::min<int64_t>(R, n - i0));
    for (int r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) qf[r * D + d] = r < rows ? widen(q[(i0 + r) * qs + d]) * scale : 0.f;
    for (int64_t b = 0; b < blocks; ++b) {  // scores, W keys at a time for R rows
      V acc[R];
      for (int r = 0; r < R; ++r) acc[r] = splat<V>(0.f);
      for (int d = 0; d < D; ++d) {
        const V key = load<V>(kt + d * npad + b * W);
        for (int r = 0; r < R; ++r) acc[r] += qf[r * D + d] * key;
      }
      for (int r = 0; r < R; ++r) store<V>(s + r * npad + b * W, acc[r]);
    }
    float inv[R] = {};
    for (int r = 0; r < rows; ++r) {  // softmax over the real keys, in place
      float* row = s + r * npad;
      V top = splat<V>(-INFINITY);
      for (int64_t b = 0; b < blocks; ++b) {
        V x = load<V>(row + b * W);
        if (b == blocks - 1) x = valid ? x : splat<V>(-INFINITY);
        top = x > top ? x : top;
      }
      float m = top[0];
      for (int l = 1; l < W; ++l) m = std::max(m, top[l]);
      V sum = splat<V>(0.f);
      for (int64_t b = 0; b < blocks; ++b) {
        V e = exp_neg<V, VI>(load<V>(row + b * W) - m);
        if (b == blocks - 1) e = valid ? e : splat<V>(0.f);
        store<V>(row + b * W, e);
        sum += e;
      }
      float total = 0.f;
      for (int l = 0; l < W; ++l) total += sum[l];
      inv[r] = 1.f / total;
    }
    constexpr int C = D / W;
    V acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = splat<V>(0.f);
    for (int64_t j = 0; j < n; ++j) {  // probabilities times values
      V val[C];
      for (int c = 0; c < C; ++c) val[c] = load<V>(vf + j * D + c * W);
      for (int r = 0; r < R; ++r) {
        const float p = s[r * npad + j];
        for (int c = 0; c < C; ++c) acc[r][c] += p * val[c];
      }
    }
    for (int r = 0; r < rows; ++r) {
      T* out = o + (i0 + r) * os;
      for (int c = 0; c < C; ++c) {
        const V x = acc[r][c] * inv[r];
        for (int l = 0; l < W; ++l) narrow(out + c * W + l, x[l]);
      }
    }
  }
}

// one call's inputs: q, k, v and the output with their row strides, each sequence's first row and
// length, and the key count every thread's scratch is sized for
template <typename T>
struct Job {
  const T *q, *k, *v;
  T* o;
  int64_t qs, ks, vs, os;
  const int64_t *starts, *lengths;
  int64_t heads;
  float scale;
  int64_t npad;
};

// the work items [begin, end) of one thread: item = sequence * heads + head
template <typename T, int D, int W>
INLINE void items(const Job<T>& job, int64_t begin, int64_t end) {
  Scratch w(job.npad, D);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t seq = item / job.heads, h = item % job.heads, row = job.starts[seq];
    one_head<T, D, W>(job.q + row * job.qs + h * D, job.k + row * job.ks + h * D, job.v + row * job.vs + h * D,
                      job.o + row * job.os + h * D, job.qs, job.ks, job.vs, job.os, job.lengths[seq], job.scale, w);
  }
}

enum class Isa { avx512, avx2, baseline };

#if defined(__x86_64__) && defined(__GNUC__)
template <typename T, int D>
__attribute__((target("avx512f"))) void items_avx512(const Job<T>& job, int64_t begin, int64_t end) {
  items<T, D, 16>(job, begin, end);
}
template <typename T, int D>
__attribute__((target("avx2,fma"))) void items_avx2(const Job<T>& job, int64_t begin, int64_t end) {
  items<T, D, 8>(job, begin, end);
}
Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::baseline;
}
#else
Isa detect() { return Isa::baseline; }
#endif

Isa isa() {
  static const Isa chosen = detect();
  return chosen;
}

template <typename T, int D>
void run(const Job<T>& job, int64_t begin, int64_t end) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa() == Isa::avx512) return items_avx512<T, D>(job, begin, end);
  if (isa() == Isa::avx2) return items_avx2<T, D>(job, begin, end);
#endif
  items<T, D, 4>(job, begin, end);
}

template <typename T>
void dispatch_d(int64_t d, const Job<T>& job, int64_t begin, int64_t end) {
  switch (d) {
    case 16: return run<T, 16>(job, begin, end);
    case 32: return run<T, 32>(job, begin, end);
    case 64: return run<T, 64>(job, begin, end);
    case 128: return run<T, 128>(job, begin, end);
    default: TORCH_CHECK(false, "varlen attention: head size ", d, " is not one of 16, 32, 64, 128");
  }
}

// q, k, v: [tokens, heads * d], each row contiguous (row strides may differ); starts, lengths: int64
// [sequences], sequence s's rows are starts[s] .. starts[s] + lengths[s] - 1
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& starts, const torch::Tensor& lengths, int64_t heads, double scale) {
  RECORD_FUNCTION("xstilts::varlen_attention", std::vector<c10::IValue>({q, k, v}));
  TORCH_CHECK(q.dim() == 2 && k.sizes() == q.sizes() && v.sizes() == q.sizes(), "q, k, v: one [tokens, width] shape");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "CPU tensors only");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), "q, k, v: one dtype");
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16, "float32 or bfloat16 only");
  TORCH_CHECK(q.stride(1) == 1 && k.stride(1) == 1 && v.stride(1) == 1, "rows must be contiguous");
  TORCH_CHECK(heads > 0 && q.size(1) % heads == 0, "width not divisible by heads");
  TORCH_CHECK(starts.scalar_type() == at::kLong && lengths.scalar_type() == at::kLong && starts.is_contiguous() &&
              lengths.is_contiguous() && starts.numel() == lengths.numel(), "starts, lengths: int64, one size");
  const int64_t* st = starts.data_ptr<int64_t>();
  const int64_t* len = lengths.data_ptr<int64_t>();
  const int64_t sequences = starts.numel(), tokens = q.size(0);
  int64_t longest = 0;
  for (int64_t s = 0; s < sequences; ++s) {
    TORCH_CHECK(len[s] > 0 && st[s] >= 0 && st[s] + len[s] <= tokens, "sequence ", s, " outside the rows");
    longest = std::max(longest, len[s]);
  }
  const int64_t npad = (longest + 15) & ~int64_t(15), d = q.size(1) / heads;
  auto out = torch::empty({tokens, q.size(1)}, q.options());
  const float sc = static_cast<float>(scale);
  auto all = [&](auto tag) {
    using T = decltype(tag);
    const Job<T> job{reinterpret_cast<const T*>(q.data_ptr()), reinterpret_cast<const T*>(k.data_ptr()),
                     reinterpret_cast<const T*>(v.data_ptr()), reinterpret_cast<T*>(out.data_ptr()),
                     q.stride(0), k.stride(0), v.stride(0), out.stride(0), st, len, heads, sc, npad};
    at::parallel_for(0, sequences * heads, 1, [&](int64_t begin, int64_t end) { dispatch_d<T>(d, job, begin, end); });
  };
  if (q.scalar_type() == at::kBFloat16) all(c10::BFloat16());
  else all(float());
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa", [] {
    switch (isa()) {
      case Isa::avx512: return "avx512";
      case Isa::avx2: return "avx2+fma";
      default: return "baseline";
    }
  }, "the instruction set the kernel runs on this CPU");
  m.def("attention", &attention, "softmax(q k^T scale) v per sequence and head (inference)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
}

// Attention over variable-length sequences stored end to end ([tokens, heads * d], the unpadded
// layout of models/unpadding.py): softmax(q k^T * scale) v per sequence and head, keys of other
// sequences and padding never touched; for training also the forward pass that keeps the softmax (and
// drops the probabilities by a caller's mask) and the backward pass. Loaded by
// xstilts/models/attention_kernel.py (built at first use); that module says why and when it is used.
//
// Each (sequence, head) is one work item: its keys are transposed (AVX-512: gathered a column at a time)
// and four query rows at a time get their scores (two vectors of keys at a time), an fp32 softmax
// (max-subtracted, a polynomial exp; the four rows' lane sums side by side) and their weighted sum of
// values, all in fp32: fp32 rows are read where they are, bf16 rows widened first; the output is
// rounded to the input's type (round to nearest even for bf16). The backward pass of an item recomputes
// nothing but the output gradient's products with the values, from the saved softmax.
//
// Compiled three times and chosen once per process by what the CPU has (isa()): AVX-512 (16-lane
// vectors), AVX2 with FMA (8 lanes) and the compiler's baseline (4 lanes). Each build uses vectors of
// its own width: 16-lane code built for AVX2 kept its vectors on the stack and ran at a tenth of
// the AVX2 build's speed, slower than PyTorch's SDPA (benchmarks/RESULTS.md).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
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
  typedef uint32_t u __attribute__((vector_size(64)));
  typedef uint16_t h __attribute__((vector_size(32)));
};
template <> struct Lanes<8> {
  typedef float f __attribute__((vector_size(32)));
  typedef int32_t i __attribute__((vector_size(32)));
  typedef uint32_t u __attribute__((vector_size(32)));
  typedef uint16_t h __attribute__((vector_size(16)));
};
template <> struct Lanes<4> {
  typedef float f __attribute__((vector_size(16)));
  typedef int32_t i __attribute__((vector_size(16)));
  typedef uint32_t u __attribute__((vector_size(16)));
  typedef uint16_t h __attribute__((vector_size(8)));
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

// W consecutive values as fp32 lanes (bf16 widened exactly: its bits are a float's upper half) and back
// (bf16 rounded to nearest even, as c10::BFloat16 rounds a finite float), a vector at a time
template <int W> INLINE typename Lanes<W>::f load_row(const float* p) { return load<typename Lanes<W>::f>(p); }
template <int W> INLINE typename Lanes<W>::f load_row(const c10::BFloat16* p) {
  typename Lanes<W>::h half;
  std::memcpy(&half, p, sizeof(half));
  const typename Lanes<W>::u bits = __builtin_convertvector(half, typename Lanes<W>::u) << 16;
  typename Lanes<W>::f r;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}
template <int W> INLINE void store_row(float* p, typename Lanes<W>::f x) { store<typename Lanes<W>::f>(p, x); }
template <int W> INLINE void store_row(c10::BFloat16* p, typename Lanes<W>::f x) {
  typename Lanes<W>::u bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  const typename Lanes<W>::h half = __builtin_convertvector(bits >> 16, typename Lanes<W>::h);
  std::memcpy(p, &half, sizeof(half));
}

// n rows of D values (row stride ``stride``) as fp32 rows: fp32 rows read where they are, bf16 rows
// widened into ``buf`` (row stride D); ``*rs`` receives the returned rows' stride
template <int D, int W> INLINE const float* fp32_rows(const float* p, int64_t stride, int64_t, float*, int64_t* rs) {
  *rs = stride;
  return p;
}
template <int D, int W>
INLINE const float* fp32_rows(const c10::BFloat16* p, int64_t stride, int64_t n, float* buf, int64_t* rs) {
  for (int64_t j = 0; j < n; ++j)
    for (int c = 0; c < D / W; ++c)
      store<typename Lanes<W>::f>(buf + j * D + c * W, load_row<W>(p + j * stride + c * W));
  *rs = D;
  return buf;
}

constexpr int R = 4;  // query rows per block: their scores share each loaded key vector

// dst[d * npad + j] = src[j * ss + d] for the n rows of D values, zeros for j = n .. npad - 1: the
// keys (values) transposed so that a vector holds W keys' d-th values. AVX-512 gathers a column's 16
// rows at once, in a function of its own: the templates below are compiled for every instruction set,
// and AVX-512 intrinsics may only be inlined into code built for AVX-512
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) void columns_avx512(const float* src, int64_t ss, int64_t n, int64_t npad, int d,
                                                      float* dst) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int32_t>(ss)));
  for (int64_t j0 = 0; j0 < npad; j0 += 16) {
    const int64_t left = n - j0;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const float* base = src + j0 * ss;
    for (int c = 0; c < d; ++c)
      _mm512_storeu_ps(dst + c * npad + j0, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, rows, base + c, 4));
  }
}
#endif

template <int D, int W>
INLINE void columns(const float* src, int64_t ss, int64_t n, int64_t npad, float* dst) {
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (W == 16) {
    if (ss * 16 < (int64_t(1) << 31)) return columns_avx512(src, ss, n, npad, D, dst);  // int32 offsets
  }
#endif
  for (int d = 0; d < D; ++d) {
    for (int64_t j = 0; j < n; ++j) dst[d * npad + j] = src[j * ss + d];
    for (int64_t j = n; j < npad; ++j) dst[d * npad + j] = 0.f;
  }
}

struct Scratch {
  std::vector<float> kt, kf, vf, s, qf;
  explicit Scratch(int64_t npad, int64_t d) : kt(d * npad), kf(npad * d), vf(npad * d), s(R * npad), qf(R * d) {}
};

// out[r][j] = sum over d of a[r][d] * bt[d][j] for the R rows of a (row stride as) and the W-column
// blocks of bt (D rows, row stride bs) into out (row stride os), each sum in order of d; two blocks at
// a time, so that eight accumulators, not four, keep the multiply-add units busy
template <int W, int D>
INLINE void products(const float* a, int64_t as, const float* bt, int64_t bs, int64_t blocks, float* out,
                     int64_t os) {
  typedef typename Lanes<W>::f V;
  int64_t b = 0;
  for (; b + 1 < blocks; b += 2) {
    V acc[2][R];
    for (int r = 0; r < R; ++r) acc[0][r] = acc[1][r] = splat<V>(0.f);
    for (int d = 0; d < D; ++d) {
      const V x0 = load<V>(bt + d * bs + b * W), x1 = load<V>(bt + d * bs + (b + 1) * W);
      for (int r = 0; r < R; ++r) {
        acc[0][r] += a[r * as + d] * x0;
        acc[1][r] += a[r * as + d] * x1;
      }
    }
    for (int r = 0; r < R; ++r) {
      store<V>(out + r * os + b * W, acc[0][r]);
      store<V>(out + r * os + (b + 1) * W, acc[1][r]);
    }
  }
  if (b < blocks) {
    V acc[R];
    for (int r = 0; r < R; ++r) acc[r] = splat<V>(0.f);
    for (int d = 0; d < D; ++d) {
      const V x = load<V>(bt + d * bs + b * W);
      for (int r = 0; r < R; ++r) acc[r] += a[r * as + d] * x;
    }
    for (int r = 0; r < R; ++r) store<V>(out + r * os + b * W, acc[r]);
  }
}

// one sequence and head: n rows of q, k, v starting at the given pointers, row strides qs, ks, vs, os;
// W keys (or value columns) per vector. In training, ``probs`` (n x n, fp32) receives the softmax for
// the backward pass and ``mask`` (rows ms apart; dropout's scaled keep mask) multiplies it before the
// values are summed: the probabilities dropped as SDPA drops them, the mask drawn by the caller.
template <typename T, int D, int W>
INLINE void one_head(const T* q, const T* k, const T* v, T* o, int64_t qs, int64_t ks, int64_t vs, int64_t os,
                     int64_t n, float scale, Scratch& w, float* probs = nullptr, const float* mask = nullptr,
                     int64_t ms = 0) {
  typedef typename Lanes<W>::f V;
  typedef typename Lanes<W>::i VI;
  const int64_t npad = (n + W - 1) / W * W, blocks = npad / W;
  float* kt = w.kt.data();
  float* s = w.s.data();
  float* qf = w.qf.data();
  int64_t vfs, kfs;
  const float* vf = fp32_rows<D, W>(v, vs, n, w.vf.data(), &vfs);
  const float* kf = fp32_rows<D, W>(k, ks, n, w.kf.data(), &kfs);
  columns<D, W>(kf, kfs, n, npad, kt);
  VI lane;
  for (int l = 0; l < W; ++l) lane[l] = l;
  const VI valid = lane < VI{} + int32_t(n - (blocks - 1) * W);  // real keys in the last block
  for (int64_t i0 = 0; i0 < n; i0 += R) {
    const int rows = int(std::min<int64_t>(R, n - i0));
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < D / W; ++c)
        store<V>(qf + r * D + c * W, r < rows ? load_row<W>(q + (i0 + r) * qs + c * W) * scale : splat<V>(0.f));
    products<W, D>(qf, D, kt, npad, blocks, s, npad);  // scores, W keys at a time for R rows
    // softmax over the real keys, in place, the R rows side by side (a block's spare rows, all-zero
    // scores, too: no lane of theirs is read); each row's maximum and sum in lane order, as one row alone
    V top[R], sum[R];
    for (int r = 0; r < R; ++r) top[r] = splat<V>(-INFINITY), sum[r] = splat<V>(0.f);
    for (int64_t b = 0; b < blocks; ++b)
      for (int r = 0; r < R; ++r) {
        V x = load<V>(s + r * npad + b * W);
        if (b == blocks - 1) x = valid ? x : splat<V>(-INFINITY);
        top[r] = x > top[r] ? x : top[r];
      }
    float m[R], total[R], inv[R];
    for (int r = 0; r < R; ++r) m[r] = top[r][0], total[r] = 0.f;
    for (int l = 1; l < W; ++l)
      for (int r = 0; r < R; ++r) m[r] = std::max(m[r], top[r][l]);
    for (int64_t b = 0; b < blocks; ++b)
      for (int r = 0; r < R; ++r) {
        V e = exp_neg<V, VI>(load<V>(s + r * npad + b * W) - m[r]);
        if (b == blocks - 1) e = valid ? e : splat<V>(0.f);
        store<V>(s + r * npad + b * W, e);
        sum[r] += e;
      }
    for (int l = 0; l < W; ++l)
      for (int r = 0; r < R; ++r) total[r] += sum[r][l];
    for (int r = 0; r < R; ++r) inv[r] = 1.f / total[r];
    for (int r = 0; r < rows; ++r) {
      float* row = s + r * npad;
      if (probs != nullptr) {
        float* keep = probs + (i0 + r) * n;
        for (int64_t j = 0; j < n; ++j) keep[j] = row[j] * inv[r];
      }
      if (mask != nullptr) {  // dropout on the unnormalised weights: the same as on the probabilities
        const float* m = mask + (i0 + r) * ms;
        for (int64_t j = 0; j < n; ++j) row[j] *= m[j];
      }
    }
    constexpr int C = D / W;
    V acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = splat<V>(0.f);
    for (int64_t j = 0; j < n; ++j) {  // probabilities times values
      V val[C];
      for (int c = 0; c < C; ++c) val[c] = load<V>(vf + j * vfs + c * W);
      for (int r = 0; r < R; ++r) {
        const float p = s[r * npad + j];
        for (int c = 0; c < C; ++c) acc[r][c] += p * val[c];
      }
    }
    for (int r = 0; r < rows; ++r) {
      T* out = o + (i0 + r) * os;
      for (int c = 0; c < C; ++c) store_row<W>(out + c * W, acc[r][c] * inv[r]);
    }
  }
}

// one call's inputs: q, k, v and the output with their row strides, each sequence's first row and
// length, and the key count every thread's scratch is sized for; in training also where each
// sequence's probabilities go (``probs`` + ``poff[sequence]``, heads x n x n) and the dropout mask
// ([sequences, heads, mlen, mlen], fp32, scaled keep mask; null: no dropout)
template <typename T>
struct Job {
  using Type = T;
  const T *q, *k, *v;
  T* o;
  int64_t qs, ks, vs, os;
  const int64_t *starts, *lengths;
  int64_t heads;
  float scale;
  int64_t npad;
  float* probs = nullptr;
  const int64_t* poff = nullptr;
  const float* mask = nullptr;
  int64_t mlen = 0;
};

// the backward pass's inputs: the forward's q, k, v and saved probabilities, the output's gradient
// (row stride gs) and the three gradients written ([tokens, heads * d], contiguous)
template <typename T>
struct GradJob {
  using Type = T;
  Job<T> fwd;
  const T* grad;
  int64_t gs;
  T *dq, *dk, *dv;
};

// the work items [begin, end) of one thread: item = sequence * heads + head
template <typename T, int D, int W>
INLINE void items(const Job<T>& job, int64_t begin, int64_t end) {
  Scratch w(job.npad, D);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t seq = item / job.heads, h = item % job.heads, row = job.starts[seq], n = job.lengths[seq];
    float* probs = job.probs == nullptr ? nullptr : job.probs + job.poff[seq] + h * n * n;
    const float* mask = job.mask == nullptr ? nullptr : job.mask + item * job.mlen * job.mlen;
    one_head<T, D, W>(job.q + row * job.qs + h * D, job.k + row * job.ks + h * D, job.v + row * job.vs + h * D,
                      job.o + row * job.os + h * D, job.qs, job.ks, job.vs, job.os, n, job.scale, w, probs, mask,
                      job.mlen);
  }
}

struct GradScratch {
  std::vector<float> qf, kf, gf, vf, vt, ds, pd, gr;
  GradScratch(int64_t npad, int64_t d)
      : qf(npad * d), kf(npad * d), gf(npad * d), vf(npad * d), vt(d * npad), ds(npad * npad), pd(npad * npad),
        gr(R * d) {}
};

// rows[i] += sum_j a[i * npad + j] * b[j] (fp32 rows of D, bs apart), R rows at a time, written to out rounded to T
template <typename T, int D, int W>
INLINE void weighted_rows(const float* a, const float* b, int64_t bs, int64_t n, int64_t npad, bool transpose, T* out,
                          int64_t os) {
  typedef typename Lanes<W>::f V;
  constexpr int C = D / W;
  for (int64_t i0 = 0; i0 < n; i0 += R) {
    const int rows = int(std::min<int64_t>(R, n - i0));
    V acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = splat<V>(0.f);
    for (int64_t j = 0; j < n; ++j) {
      V x[C];
      for (int c = 0; c < C; ++c) x[c] = load<V>(b + j * bs + c * W);
      for (int r = 0; r < R; ++r) {
        const float weight = transpose ? a[j * npad + i0 + r] : a[(i0 + r) * npad + j];
        for (int c = 0; c < C; ++c) acc[r][c] += weight * x[c];
      }
    }
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < C; ++c) store_row<W>(out + (i0 + r) * os + c * W, acc[r][c]);
  }
}

// one sequence and head's gradients: with P the saved softmax and M the mask, the output was
// (P * M) v, so dv = (P * M)^T g, dP = (g v^T) * M, the scores' gradient dS = P * (dP - rowsum(dP * P))
// and, the scores being (q k^T) * scale, dq = scale dS k and dk = scale dS^T q
template <typename T, int D, int W>
INLINE void one_head_grad(const GradJob<T>& job, int64_t item, GradScratch& w) {
  typedef typename Lanes<W>::f V;
  const Job<T>& f = job.fwd;
  const int64_t seq = item / f.heads, h = item % f.heads, row = f.starts[seq], n = f.lengths[seq];
  const int64_t npad = (n + W - 1) / W * W, blocks = npad / W;
  const T *q = f.q + row * f.qs + h * D, *k = f.k + row * f.ks + h * D, *v = f.v + row * f.vs + h * D;
  const T* g = job.grad + row * job.gs + h * D;
  const float* probs = f.probs + f.poff[seq] + h * n * n;
  const float* mask = f.mask == nullptr ? nullptr : f.mask + item * f.mlen * f.mlen;
  float *vt = w.vt.data(), *ds = w.ds.data(), *pd = w.pd.data(), *gr = w.gr.data();
  int64_t qfs, kfs, gfs;
  const float* qf = fp32_rows<D, W>(q, f.qs, n, w.qf.data(), &qfs);
  const float* kf = fp32_rows<D, W>(k, f.ks, n, w.kf.data(), &kfs);
  const float* gf = fp32_rows<D, W>(g, job.gs, n, w.gf.data(), &gfs);
  int64_t vfs;
  const float* vf = fp32_rows<D, W>(v, f.vs, n, w.vf.data(), &vfs);
  columns<D, W>(vf, vfs, n, npad, vt);
  for (int64_t i0 = 0; i0 < n; i0 += R) {
    const int rows = int(std::min<int64_t>(R, n - i0));
    for (int r = 0; r < R; ++r)  // the block's rows of g (zeros past the last), then g v^T into ds
      for (int c = 0; c < D / W; ++c)
        store<V>(gr + r * D + c * W, r < rows ? load<V>(gf + (i0 + r) * gfs + c * W) : splat<V>(0.f));
    products<W, D>(gr, D, vt, npad, blocks, ds + i0 * npad, npad);
    for (int r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      const float* p = probs + i * n;
      const float* m = mask == nullptr ? nullptr : mask + i * f.mlen;
      float* dsi = ds + i * npad;
      float* pdi = pd + i * npad;
      float dot = 0.f;
      for (int64_t j = 0; j < n; ++j) {
        const float dp = m == nullptr ? dsi[j] : dsi[j] * m[j];
        dsi[j] = dp;
        dot += dp * p[j];
        pdi[j] = m == nullptr ? p[j] : p[j] * m[j];
      }
      for (int64_t j = 0; j < n; ++j) dsi[j] = f.scale * p[j] * (dsi[j] - dot);
      for (int64_t j = n; j < npad; ++j) dsi[j] = pdi[j] = 0.f;
    }
  }
  const int64_t out = row * f.heads * D + h * D, os = f.heads * D;  // the gradients are contiguous
  weighted_rows<T, D, W>(ds, kf, kfs, n, npad, false, job.dq + out, os);
  weighted_rows<T, D, W>(ds, qf, qfs, n, npad, true, job.dk + out, os);
  weighted_rows<T, D, W>(pd, gf, gfs, n, npad, true, job.dv + out, os);
}

template <typename T, int D, int W>
INLINE void items(const GradJob<T>& job, int64_t begin, int64_t end) {
  GradScratch w(job.fwd.npad, D);
  for (int64_t item = begin; item < end; ++item) one_head_grad<T, D, W>(job, item, w);
}

enum class Isa { avx512, avx2, baseline };

#if defined(__x86_64__) && defined(__GNUC__)
template <typename J, int D>
__attribute__((target("avx512f"))) void items_avx512(const J& job, int64_t begin, int64_t end) {
  items<typename J::Type, D, 16>(job, begin, end);
}
template <typename J, int D>
__attribute__((target("avx2,fma"))) void items_avx2(const J& job, int64_t begin, int64_t end) {
  items<typename J::Type, D, 8>(job, begin, end);
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

template <typename J, int D>
void run(const J& job, int64_t begin, int64_t end) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa() == Isa::avx512) return items_avx512<J, D>(job, begin, end);
  if (isa() == Isa::avx2) return items_avx2<J, D>(job, begin, end);
#endif
  items<typename J::Type, D, 4>(job, begin, end);
}

template <typename J>
void dispatch_d(int64_t d, const J& job, int64_t begin, int64_t end) {
  switch (d) {
    case 16: return run<J, 16>(job, begin, end);
    case 32: return run<J, 32>(job, begin, end);
    case 64: return run<J, 64>(job, begin, end);
    case 128: return run<J, 128>(job, begin, end);
    default: TORCH_CHECK(false, "varlen attention: head size ", d, " is not one of 16, 32, 64, 128");
  }
}

// every work item, on the calling thread's PyTorch thread count (at::get_num_threads(), libtorch's own:
// an evaluation worker's 1), a few sequences' heads per task. Not at::parallel_for: its inline lazy
// initialisation keeps a flag per shared library, so in a thread PyTorch had set to 1 it would
// re-initialise to the process-wide count (models/extensions.py). Each item is computed by one thread
// whatever the count: the same bits on any number of threads.
template <typename J>
void over_items(const J& job, int64_t d, int64_t count) {
  constexpr int64_t chunk = 16;
  const int64_t tasks = (count + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks)));
  if (threads == 1) return dispatch_d(d, job, 0, count);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) dispatch_d(d, job, task * chunk, std::min(count, (task + 1) * chunk));
}

struct Shape {
  const int64_t *starts, *lengths;
  int64_t sequences, longest, npad, d;
};

// checks one call's inputs; q, k, v: [tokens, heads * d], each row contiguous (row strides may differ);
// starts, lengths: int64 [sequences], sequence s's rows are starts[s] .. starts[s] + lengths[s] - 1
Shape check(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& starts,
            const torch::Tensor& lengths, int64_t heads) {
  TORCH_CHECK(q.dim() == 2 && k.sizes() == q.sizes() && v.sizes() == q.sizes(), "q, k, v: one [tokens, width] shape");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "CPU tensors only");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), "q, k, v: one dtype");
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16, "float32 or bfloat16 only");
  TORCH_CHECK(q.stride(1) == 1 && k.stride(1) == 1 && v.stride(1) == 1, "rows must be contiguous");
  TORCH_CHECK(heads > 0 && q.size(1) % heads == 0, "width not divisible by heads");
  const int64_t d = q.size(1) / heads;  // checked here: nothing may throw on the parallel threads
  TORCH_CHECK(d == 16 || d == 32 || d == 64 || d == 128, "varlen attention: head size ", d,
              " is not one of 16, 32, 64, 128");
  TORCH_CHECK(starts.scalar_type() == at::kLong && lengths.scalar_type() == at::kLong && starts.is_contiguous() &&
              lengths.is_contiguous() && starts.numel() == lengths.numel(), "starts, lengths: int64, one size");
  Shape shape{starts.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(), starts.numel(), 0, 0, d};
  for (int64_t s = 0; s < shape.sequences; ++s) {
    TORCH_CHECK(shape.lengths[s] > 0 && shape.starts[s] >= 0 && shape.starts[s] + shape.lengths[s] <= q.size(0),
                "sequence ", s, " outside the rows");
    shape.longest = std::max(shape.longest, shape.lengths[s]);
  }
  shape.npad = (shape.longest + 15) & ~int64_t(15);
  return shape;
}

// the dropout mask's data (null for none): fp32 [sequences, heads, L, L] with every length <= L
const float* mask_data(const std::optional<torch::Tensor>& mask, const Shape& shape, int64_t heads, int64_t* mlen) {
  if (!mask.has_value()) return nullptr;
  const torch::Tensor& m = *mask;
  TORCH_CHECK(m.scalar_type() == at::kFloat && m.is_contiguous() && m.dim() == 4 && m.size(0) == shape.sequences &&
              m.size(1) == heads && m.size(2) == m.size(3) && m.size(2) >= shape.longest,
              "mask: contiguous float32 [sequences, heads, L, L] with L >= the longest sequence");
  *mlen = m.size(2);
  return m.data_ptr<float>();
}

template <typename F>
void by_type(const torch::Tensor& q, F&& f) {
  if (q.scalar_type() == at::kBFloat16) f(c10::BFloat16());
  else f(float());
}

// the forward pass into a new output; in training (probs not null) keeping each item's softmax at
// probs + off[sequence] and dropping the probabilities by the mask m (null: no dropout)
torch::Tensor run_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const Shape& shape,
                          int64_t heads, double scale, float* probs = nullptr, const int64_t* off = nullptr,
                          const float* m = nullptr, int64_t mlen = 0) {
  auto out = torch::empty({q.size(0), q.size(1)}, q.options());
  by_type(q, [&](auto tag) {
    using T = decltype(tag);
    const Job<T> job{reinterpret_cast<const T*>(q.data_ptr()), reinterpret_cast<const T*>(k.data_ptr()),
                     reinterpret_cast<const T*>(v.data_ptr()), reinterpret_cast<T*>(out.data_ptr()),
                     q.stride(0), k.stride(0), v.stride(0), out.stride(0), shape.starts, shape.lengths, heads,
                     static_cast<float>(scale), shape.npad, probs, off, m, mlen};
    over_items(job, shape.d, shape.sequences * heads);
  });
  return out;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& starts, const torch::Tensor& lengths, int64_t heads, double scale) {
  RECORD_FUNCTION("xstilts::varlen_attention", std::vector<c10::IValue>({q, k, v}));
  return run_forward(q, k, v, check(q, k, v, starts, lengths, heads), heads, scale);
}

// training's forward: the output and, for the backward pass, every sequence's softmax (fp32, heads x n x n
// each, end to end) and where each begins, with dropout's scaled keep mask (optional) applied to the
// probabilities
std::vector<torch::Tensor> attention_train(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& starts, const torch::Tensor& lengths, int64_t heads,
                                           double scale, const std::optional<torch::Tensor>& mask) {
  RECORD_FUNCTION("xstilts::varlen_attention_train", std::vector<c10::IValue>({q, k, v}));
  const Shape shape = check(q, k, v, starts, lengths, heads);
  int64_t mlen = 0;
  const float* m = mask_data(mask, shape, heads, &mlen);
  auto poff = torch::empty({shape.sequences}, starts.options());
  int64_t* off = poff.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t s = 0; s < shape.sequences; ++s) {
    off[s] = total;
    total += heads * shape.lengths[s] * shape.lengths[s];
  }
  auto probs = torch::empty({total}, q.options().dtype(at::kFloat));
  return {run_forward(q, k, v, shape, heads, scale, probs.data_ptr<float>(), off, m, mlen), probs, poff};
}

// training's backward: the gradients of q, k and v (contiguous [tokens, heads * d]) from the output's
std::vector<torch::Tensor> attention_backward(const torch::Tensor& grad, const torch::Tensor& q, const torch::Tensor& k,
                                              const torch::Tensor& v, const torch::Tensor& starts,
                                              const torch::Tensor& lengths, int64_t heads, double scale,
                                              const std::optional<torch::Tensor>& mask, const torch::Tensor& probs,
                                              const torch::Tensor& poff) {
  RECORD_FUNCTION("xstilts::varlen_attention_backward", std::vector<c10::IValue>({grad, q, k, v}));
  const Shape shape = check(q, k, v, starts, lengths, heads);
  TORCH_CHECK(grad.sizes() == q.sizes() && grad.scalar_type() == q.scalar_type() && grad.stride(1) == 1,
              "grad: q's shape and dtype, rows contiguous");
  TORCH_CHECK(probs.scalar_type() == at::kFloat && probs.is_contiguous() && poff.scalar_type() == at::kLong &&
              poff.is_contiguous() && poff.numel() == shape.sequences, "probs, poff: as attention_train gave them");
  int64_t mlen = 0;
  const float* m = mask_data(mask, shape, heads, &mlen);
  bool covered = true;  // the sequences end to end over every row (the unpadded encoder's layout)
  int64_t next = 0;
  for (int64_t s = 0; s < shape.sequences; next += shape.lengths[s], ++s) covered = covered && shape.starts[s] == next;
  covered = covered && next == q.size(0);
  auto gradient = [&] {  // rows outside every sequence get zero gradients
    auto t = torch::empty({q.size(0), q.size(1)}, q.options());
    return covered ? t : t.zero_();
  };
  auto dq = gradient(), dk = gradient(), dv = gradient();
  by_type(q, [&](auto tag) {
    using T = decltype(tag);
    const Job<T> fwd{reinterpret_cast<const T*>(q.data_ptr()), reinterpret_cast<const T*>(k.data_ptr()),
                     reinterpret_cast<const T*>(v.data_ptr()), nullptr, q.stride(0), k.stride(0), v.stride(0), 0,
                     shape.starts, shape.lengths, heads, static_cast<float>(scale), shape.npad,
                     const_cast<float*>(probs.data_ptr<float>()), poff.data_ptr<int64_t>(), m, mlen};
    const GradJob<T> job{fwd, reinterpret_cast<const T*>(grad.data_ptr()), grad.stride(0),
                         reinterpret_cast<T*>(dq.data_ptr()), reinterpret_cast<T*>(dk.data_ptr()),
                         reinterpret_cast<T*>(dv.data_ptr())};
    over_items(job, shape.d, shape.sequences * heads);
  });
  return {dq, dk, dv};
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
  m.def("attention_train", &attention_train, "training's forward: (output, probabilities, their offsets)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("attention_backward", &attention_backward, "training's backward: (dq, dk, dv)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
}

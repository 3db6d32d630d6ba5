// PyTorch's CPU bernoulli_(p), the generic path, drawn by a vectorised Mersenne Twister: the same
// numbers from the same default generator, in the same order, leaving it in the same state.
// Loaded by xstilts/models/draws.py (built at first use); that module says why and when it is used.
//
// PyTorch draws each element as one random64() -- two 32-bit engine outputs, the first the high
// word -- turns its low 53 bits into a double in [0, 1) and keeps the element where that is below p.
// The engine (ATen/core/MT19937RNGEngine.h) twists its 624-word state one word at a time; here the
// twist and the tempering run over whole blocks, so the compiler vectorises them.
#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/MT19937RNGEngine.h>

namespace {
constexpr int N = 624, M = 397;
constexpr uint32_t UPPER = 0x80000000u, LOWER = 0x7fffffffu, MATRIX_A = 0x9908b0dfu;

__attribute__((target_clones("avx512f", "avx2", "default")))
void twist(uint32_t* __restrict s) {
  for (int i = 0; i < N - M; ++i) {
    uint32_t y = (s[i] & UPPER) | (s[i + 1] & LOWER);
    s[i] = s[i + M] ^ (y >> 1) ^ ((s[i + 1] & 1u) ? MATRIX_A : 0u);
  }
  for (int i = N - M; i < N - 1; ++i) {
    uint32_t y = (s[i] & UPPER) | (s[i + 1] & LOWER);
    s[i] = s[i + M - N] ^ (y >> 1) ^ ((s[i + 1] & 1u) ? MATRIX_A : 0u);
  }
  uint32_t y = (s[N - 1] & UPPER) | (s[0] & LOWER);
  s[N - 1] = s[M - 1] ^ (y >> 1) ^ ((s[0] & 1u) ? MATRIX_A : 0u);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void temper(const uint32_t* __restrict in, uint32_t* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t y = in[i];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    out[i] = y;
  }
}

// The next `count` 32-bit outputs of the engine, as `count` calls of mt19937::operator() would give.
void fill_words(at::mt19937_data_pod& d, uint32_t* out, int64_t count) {
  uint32_t* s = d.state_.data();
  int64_t avail = d.left_ - 1;  // words left in the current block, from next_
  int64_t k = std::min<int64_t>(avail, count);
  if (k > 0) {
    temper(s + d.next_, out, k);
    d.next_ += k; d.left_ -= k; out += k; count -= k;
  }
  while (count > 0) {
    twist(s);
    int64_t r = std::min<int64_t>(N, count);
    temper(s, out, r);
    d.left_ = N + 1 - r; d.next_ = r; out += r; count -= r;
  }
}

template <typename T>
__attribute__((target_clones("avx512f", "avx2", "default")))
void compare(const uint32_t* __restrict w, T* __restrict out, int64_t n, uint64_t below, T one, T zero) {
  for (int64_t i = 0; i < n; ++i) {
    uint64_t low53 = (uint64_t(w[2 * i] & 0x1fffffu) << 32) | w[2 * i + 1];
    out[i] = low53 < below ? one : zero;
  }
}

template <typename T>
void draw(at::mt19937_data_pod& d, T* out, int64_t n, uint64_t below, T one, T zero) {
  constexpr int64_t CHUNK = 2048;  // units at a time: 16 KiB of words, in L1
  uint32_t words[2 * CHUNK];
  for (int64_t start = 0; start < n; start += CHUNK) {
    int64_t m = std::min(CHUNK, n - start);
    fill_words(d, words, 2 * m);
    compare<T>(words, out + start, m, below, one, zero);
  }
}
}  // namespace

// bernoulli_(p) on a contiguous CPU tensor with the default generator, as PyTorch's generic CPU path
// draws it: one random64 per element (hi word first), kept where its low 53 bits / 2^53 < p.
void bernoulli_(torch::Tensor self, double p) {
  TORCH_CHECK(self.is_contiguous() && self.device().is_cpu(), "contiguous CPU tensor expected");
  // keep iff m * 2^-53 < p for integer m < 2^53, i.e. m < ceil(p * 2^53)
  double scaled = std::ceil(p * 9007199254740992.0);
  uint64_t below = scaled <= 0 ? 0 : (scaled >= 9007199254740992.0 ? (uint64_t(1) << 53) : uint64_t(scaled));
  auto gen = at::detail::getDefaultCPUGenerator();
  auto* impl = at::check_generator<at::CPUGeneratorImpl>(gen);
  std::lock_guard<std::mutex> lock(impl->mutex_);
  at::mt19937 engine = impl->engine();
  at::mt19937_data_pod d = engine.data();
  int64_t n = self.numel();
  switch (self.scalar_type()) {
    case at::kFloat: draw<float>(d, self.data_ptr<float>(), n, below, 1.0f, 0.0f); break;
    case at::kDouble: draw<double>(d, self.data_ptr<double>(), n, below, 1.0, 0.0); break;
    case at::kBFloat16: draw<uint16_t>(d, reinterpret_cast<uint16_t*>(self.data_ptr()), n, below, 0x3f80, 0); break;
    case at::kHalf: draw<uint16_t>(d, reinterpret_cast<uint16_t*>(self.data_ptr()), n, below, 0x3c00, 0); break;
    case at::kBool: draw<uint8_t>(d, reinterpret_cast<uint8_t*>(self.data_ptr()), n, below, 1, 0); break;
    default: TORCH_CHECK(false, "unsupported dtype");
  }
  engine.set_data(d);
  impl->set_engine(engine);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bernoulli_", &bernoulli_, "self.bernoulli_(p) from the default CPU generator, as PyTorch's generic path");
}

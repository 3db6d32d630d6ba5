// fp32 matrix products through OpenBLAS's sgemm, the rows of the result split over PyTorch's
// intra-op threads (models/openblas.py says why). Built with -fopenmp (models/extensions.py): the
// loop below runs on the OpenMP runtime PyTorch already loaded.
//
// OpenBLAS runs one thread per call here (set_single_threaded): its own thread pool beside
// PyTorch's OpenMP one put three busy threads on two cores and halved a training step's speed.
// Each of PyTorch's threads instead multiplies its own block of rows of the result, so the work is
// split the way PyTorch splits an element-wise operator. The library is scipy-openblas32's (the
// build numpy and scipy ship), whose symbols carry a `scipy_` prefix; cblas.h is its header.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include <cblas.h>

namespace {

// A 2-D fp32 operand as sgemm reads it: row-major with rows `ld` apart, or its transpose.
struct Operand {
  const float* data;
  bool transposed;
  int64_t ld;
};

// Whether t is row-major as sgemm reads it: unit stride along the second dimension, rows at least
// their length apart. A transposed row-major matrix is one whose transpose is.
bool row_major(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  return col_stride == 1 && (rows <= 1 || row_stride >= std::max<int64_t>(cols, 1));
}

// Whether sgemm can read t or its transpose
bool readable(const at::Tensor& t) {
  return row_major(t.size(0), t.size(1), t.stride(0), t.stride(1)) ||
         row_major(t.size(1), t.size(0), t.stride(1), t.stride(0));
}

// op(t) for sgemm, row-major or a transposed row-major matrix; t must be readable()
Operand operand(const at::Tensor& t) {
  const int64_t rows = t.size(0), cols = t.size(1);
  if (row_major(rows, cols, t.stride(0), t.stride(1))) {
    return {t.data_ptr<float>(), false, std::max<int64_t>({t.stride(0), cols, 1})};
  }
  return {t.data_ptr<float>(), true, std::max<int64_t>({t.stride(1), rows, 1})};
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 2,
              "openblas_gemm: ", name, " must be a 2-D fp32 CPU tensor");
}

// out[M,N] = a[M,K] · b[K,N] + beta · out, out contiguous; blocks of at least `grain` rows a thread
void gemm_into(const at::Tensor& a_in, const at::Tensor& b_in, at::Tensor& out, float beta) {
  // any other layout (a broadcast gradient, a strided view) is copied once here
  const at::Tensor a = readable(a_in) ? a_in : a_in.contiguous();
  const at::Tensor b = readable(b_in) ? b_in : b_in.contiguous();
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  TORCH_CHECK(b.size(0) == K && out.size(0) == M && out.size(1) == N && out.is_contiguous(),
              "openblas_gemm: shapes do not match");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    out.mul_(beta);
    return;
  }
  const Operand A = operand(a), B = operand(b);
  float* C = out.data_ptr<float>();
  // at::get_num_threads() is libtorch's own: the calling thread's count (an evaluation worker's 1).
  // Not at::parallel_for: its inline lazy initialisation keeps a flag per shared library, so in a
  // thread PyTorch had already set to 1 it would re-initialise to the process-wide count and leave
  // that thread running every later operator on that many threads.
  const int64_t grain = 64;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), M / grain)));
  auto rows = [&](int part) {
    const int64_t begin = M * part / threads, end = M * (part + 1) / threads;
    const float* block = A.transposed ? A.data + begin : A.data + begin * A.ld;
    scipy_cblas_sgemm(CblasRowMajor, A.transposed ? CblasTrans : CblasNoTrans,
                      B.transposed ? CblasTrans : CblasNoTrans, end - begin, N, K, 1.0f, block, A.ld,
                      B.data, B.ld, beta, C + begin * N, N);
  };
  if (threads == 1) {
    rows(0);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int part = 0; part < threads; ++part) rows(part);
}

}  // namespace

// a @ b as a new contiguous tensor
at::Tensor mm(const at::Tensor& a, const at::Tensor& b) {
  check(a, "a");
  check(b, "b");
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  gemm_into(a, b, out, 0.0f);
  return out;
}

// x @ weight.T + bias (bias may be None), as F.linear computes it for a 2-D x
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  check(x, "x");
  check(weight, "weight");
  at::Tensor out = at::empty({x.size(0), weight.size(0)}, x.options());
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), "openblas_gemm: bias does not match");
    // copied into a fresh tensor: expand(...).contiguous() of a one-row x would be the bias itself, written over
    out.copy_(bias->unsqueeze(0).expand({x.size(0), weight.size(0)}));
  }
  gemm_into(x, weight.t(), out, has_bias ? 1.0f : 0.0f);
  return out;
}

void set_single_threaded() { scipy_openblas_set_num_threads(1); }

std::string config() { return scipy_openblas_get_config(); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // without the GIL, as PyTorch's own operators run: evaluation's worker threads multiply side by side
  m.def("mm", &mm, "a @ b through OpenBLAS", pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("linear", &linear, "x @ weight.T + bias through OpenBLAS",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("set_single_threaded", &set_single_threaded, "one OpenBLAS thread per call");
  m.def("config", &config, "OpenBLAS's build description");
}

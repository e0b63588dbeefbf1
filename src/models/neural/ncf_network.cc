#include "neural/ncf_network.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "recforge/core/parallel.h"

namespace recforge::models::ncf {
namespace {

using ConstMap = Eigen::Map<const RowMatrix>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;

// Standard normal by Box-Muller (both values used).
void FillNormal(float* out, std::size_t n, float std_dev, Rng& rng) {
  constexpr double kTwoPi = 6.283185307179586;
  for (std::size_t k = 0; k < n; k += 2) {
    const double u1 = 1.0 - rng.Uniform();  // (0, 1]
    const double u2 = rng.Uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    out[k] = static_cast<float>(std_dev * radius * std::cos(kTwoPi * u2));
    if (k + 1 < n) out[k + 1] = static_cast<float>(std_dev * radius * std::sin(kTwoPi * u2));
  }
}

void FillTable(std::vector<float>& table, std::size_t rows, std::size_t width, float std_dev,
               std::uint64_t seed, int threads) {
  table.assign(rows * width, 0.0f);
  if (width == 0) return;
  ParallelFor<std::size_t>(0, rows, threads, [&](std::size_t row) {
    Rng rng(DeriveSeed(seed, row));
    FillNormal(table.data() + row * width, width, std_dev, rng);
  });
}

}  // namespace

void Gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a,
          const float* b, float beta, float* c) {
  const auto lda = static_cast<blasint>(trans_a ? m : k);
  const auto ldb = static_cast<blasint>(trans_b ? k : n);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a, lda, b,
              ldb, beta, c, static_cast<blasint>(n));
}


DenseLayout DenseLayout::For(const Shape& shape) {
  DenseLayout layout;
  std::size_t at = 0;
  for (std::size_t l = 0; l < shape.hidden.size(); ++l) {
    layout.weight.push_back(at);
    at += shape.hidden[l] * shape.LayerInput(l);
    layout.bias.push_back(at);
    at += shape.hidden[l];
  }
  layout.out_weight = at;
  at += shape.FinalWidth();
  layout.out_bias = at;
  layout.size = at + 1;
  return layout;
}

void Parameters::Initialize(const Shape& new_shape, std::size_t users, std::size_t items,
                            float init_std, std::uint64_t seed, int threads) {
  shape = new_shape;
  layout = DenseLayout::For(shape);
  n_users = users;
  n_items = items;
  FillTable(user_gmf, users, shape.GmfWidth(), init_std, DeriveSeed(seed, 1), threads);
  FillTable(item_gmf, items, shape.GmfWidth(), init_std, DeriveSeed(seed, 2), threads);
  FillTable(user_mlp, users, shape.use_mlp ? shape.mlp_factors : 0, init_std,
            DeriveSeed(seed, 3), threads);
  FillTable(item_mlp, items, shape.use_mlp ? shape.mlp_factors : 0, init_std,
            DeriveSeed(seed, 4), threads);
  dense.assign(layout.size, 0.0f);
  Rng rng(DeriveSeed(seed, 5));
  for (std::size_t l = 0; l < shape.hidden.size(); ++l) {
    const std::size_t fan_in = shape.LayerInput(l), fan_out = shape.hidden[l];
    const double bound = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    for (std::size_t k = 0; k < fan_in * fan_out; ++k) {
      dense[layout.weight[l] + k] = static_cast<float>((2.0 * rng.Uniform() - 1.0) * bound);
    }
  }
  const std::size_t final_width = shape.FinalWidth();
  const double bound = std::sqrt(3.0 / static_cast<double>(std::max<std::size_t>(final_width, 1)));
  for (std::size_t k = 0; k < final_width; ++k) {
    dense[layout.out_weight + k] = static_cast<float>((2.0 * rng.Uniform() - 1.0) * bound);
  }
}

void Forward(const Parameters& params, std::span<const UserIndex> users,
             std::span<const ItemIndex> items, float dropout, Rng* rng, Workspace& ws) {
  const Shape& shape = params.shape;
  const std::size_t rows = users.size();
  const std::size_t f = shape.GmfWidth();
  const std::size_t m = shape.use_mlp ? shape.mlp_factors : 0;
  const std::size_t layers = shape.use_mlp ? shape.hidden.size() : 0;
  const bool drop = dropout > 0.0f && rng != nullptr && layers > 0;
  ws.rows = rows;
  ws.logits.resize(static_cast<Eigen::Index>(rows));
  ws.logits.setConstant(params.dense[params.layout.out_bias]);
  const float* out_w = params.dense.data() + params.layout.out_weight;
  if (f > 0) {
    ws.gmf.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(f));
    for (std::size_t r = 0; r < rows; ++r) {
      const float* p = params.user_gmf.data() + std::size_t{users[r]} * f;
      const float* q = params.item_gmf.data() + std::size_t{items[r]} * f;
      float* g = ws.gmf.data() + r * f;
      for (std::size_t c = 0; c < f; ++c) g[c] = p[c] * q[c];
    }
    ws.logits.noalias() += ws.gmf * ConstVectorMap(out_w, static_cast<Eigen::Index>(f));
  }
  if (layers == 0) return;
  ws.x.resize(layers + 1);
  ws.mask.resize(drop ? layers : 0);
  RowMatrix& input = ws.x[0];
  input.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(2 * m));
  for (std::size_t r = 0; r < rows; ++r) {
    float* x = input.data() + r * 2 * m;
    std::copy_n(params.user_mlp.data() + std::size_t{users[r]} * m, m, x);
    std::copy_n(params.item_mlp.data() + std::size_t{items[r]} * m, m, x + m);
  }
  const float keep_scale = drop ? 1.0f / (1.0f - dropout) : 1.0f;
  for (std::size_t l = 0; l < layers; ++l) {
    const auto width = static_cast<Eigen::Index>(shape.hidden[l]);
    ConstVectorMap bias(params.dense.data() + params.layout.bias[l], width);
    RowMatrix& out = ws.x[l + 1];
    out.resize(static_cast<Eigen::Index>(rows), width);
    // x_l = x_{l-1} W_l^T (rows x in times (h x in)^T)
    Gemm(false, true, rows, shape.hidden[l], shape.LayerInput(l), ws.x[l].data(),
         params.dense.data() + params.layout.weight[l], 0.0f, out.data());
    out.rowwise() += bias.transpose();
    out = out.cwiseMax(0.0f);
    if (drop) {
      RowMatrix& mask = ws.mask[l];
      mask.resize(out.rows(), out.cols());
      float* scale = mask.data();
      for (Eigen::Index k = 0; k < mask.size(); ++k) {
        scale[k] = rng->UniformFloat() < dropout ? 0.0f : keep_scale;
      }
      out.array() *= mask.array();
    }
  }
  ws.logits.noalias() +=
      ws.x[layers] * ConstVectorMap(out_w + f, static_cast<Eigen::Index>(shape.hidden.back()));
}

void Backward(const Parameters& params, std::span<const UserIndex> users,
              std::span<const ItemIndex> items, const float* dlogits, Workspace& ws,
              float* dense_grad, float* d_user_gmf, float* d_item_gmf, float* d_user_mlp,
              float* d_item_mlp) {
  const Shape& shape = params.shape;
  const DenseLayout& layout = params.layout;
  const std::size_t rows = ws.rows;
  const std::size_t f = shape.GmfWidth();
  const std::size_t m = shape.use_mlp ? shape.mlp_factors : 0;
  const std::size_t layers = shape.use_mlp ? shape.hidden.size() : 0;
  const auto n_rows = static_cast<Eigen::Index>(rows);
  ConstVectorMap d(dlogits, n_rows);
  const float* out_w = params.dense.data() + layout.out_weight;
  dense_grad[layout.out_bias] += d.sum();
  if (f > 0) {
    const auto width = static_cast<Eigen::Index>(f);
    VectorMap(dense_grad + layout.out_weight, width).noalias() += ws.gmf.transpose() * d;
    for (std::size_t r = 0; r < rows; ++r) {
      const float* p = params.user_gmf.data() + std::size_t{users[r]} * f;
      const float* q = params.item_gmf.data() + std::size_t{items[r]} * f;
      float* dp = d_user_gmf + r * f;
      float* dq = d_item_gmf + r * f;
      const float dr = dlogits[r];
      for (std::size_t c = 0; c < f; ++c) {
        const float dg = dr * out_w[c];
        dp[c] = dg * q[c];
        dq[c] = dg * p[c];
      }
    }
  }
  if (layers == 0) return;
  const auto last = static_cast<Eigen::Index>(shape.hidden.back());
  VectorMap(dense_grad + layout.out_weight + f, last).noalias() += ws.x[layers].transpose() * d;
  // grad_a holds dL/dx_l of the current layer, grad_b the next one down.
  ws.grad_a.noalias() = d * ConstVectorMap(out_w + f, last).transpose();
  for (std::size_t l = layers; l-- > 0;) {
    const auto width = static_cast<Eigen::Index>(shape.hidden[l]);
    const auto in = static_cast<Eigen::Index>(shape.LayerInput(l));
    // dz = dx (.) mask (.) [x > 0]; x > 0 implies a kept unit, so the mask is its scale.
    const RowMatrix& x = ws.x[l + 1];
    if (ws.mask.empty()) {
      ws.grad_a = (x.array() > 0.0f).select(ws.grad_a, 0.0f);
    } else {
      ws.grad_a = (x.array() > 0.0f).select(ws.grad_a.cwiseProduct(ws.mask[l]), 0.0f);
    }
    // dW_l += dz^T x_{l-1};  dx_{l-1} = dz W_l
    Gemm(true, false, shape.hidden[l], shape.LayerInput(l), rows, ws.grad_a.data(), ws.x[l].data(),
         1.0f, dense_grad + layout.weight[l]);
    VectorMap(dense_grad + layout.bias[l], width).noalias() +=
        ws.grad_a.colwise().sum().transpose();
    ws.grad_b.resize(n_rows, in);
    Gemm(false, false, rows, shape.LayerInput(l), shape.hidden[l], ws.grad_a.data(),
         params.dense.data() + layout.weight[l], 0.0f, ws.grad_b.data());
    ws.grad_a.swap(ws.grad_b);
  }
  // grad_a is now dL/dx_0 (rows x 2m).
  for (std::size_t r = 0; r < rows; ++r) {
    const float* dx = ws.grad_a.data() + r * 2 * m;
    std::copy_n(dx, m, d_user_mlp + r * m);
    std::copy_n(dx + m, m, d_item_mlp + r * m);
  }
}

}  // namespace recforge::models::ncf

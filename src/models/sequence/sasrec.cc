#include "sequence/sasrec.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <numeric>

#include <cblas.h>

#include "factor/eigen.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColVec = Eigen::VectorXf;
using RowVec = Eigen::RowVectorXf;
using RowMap = Eigen::Map<RowVec>;
using ConstRowMap = Eigen::Map<const RowVec>;

constexpr float kLayerNormEps = 1e-5f;
constexpr float kAdamEps = 1e-8f;
constexpr int kNegativeTries = 8;
// Below this much work (positions x d^2 x blocks multiply-adds) a batch runs its shards
// on the calling thread: a parallel region costs more than it saves on tiny batches,
// and far more on an oversubscribed machine. The shards and their summation order are
// the same either way, so the model does not depend on it.
constexpr double kParallelBatchWork = 4e6;
// Element-wise passes (gradient reduction, Adam) over fewer parameters run serially.
constexpr std::size_t kParallelElements = 1 << 17;
// Streams of ctx.seed.
constexpr std::uint64_t kInitStream = 0x696e6974;      // "init"
constexpr std::uint64_t kShuffleStream = 0x73687566;   // "shuf"
constexpr std::uint64_t kWindowStream = 0x77696e64;    // "wind"

// Activations of one block, kept for the backward pass.
struct BlockCache {
  Mat x_in, a_hat, a, q, k, v, o, att_mask, x_mid, b_hat, b, h_pre, h, h_mask, f_mask;
  ColVec a_rstd, b_rstd;
  std::vector<Mat> p;  // attention probabilities per head, n x n (lower triangular)
};

// One forward / backward pass's scratch (one per thread).
struct Workspace {
  std::vector<BlockCache> blocks;
  Mat x0_mask, x_out, z_hat, z;
  ColVec z_rstd;
  // Backward scratch.
  Mat dx, dtmp, df, dh, dbn, datt, d_o, dq, dk, dv, da, dp, ds, dz;
};

void LayerNormForward(const Mat& x, const float* gamma, const float* beta, Mat& x_hat, ColVec& rstd,
                      Mat& y) {
  const Eigen::Index n = x.rows(), d = x.cols();
  x_hat.resize(n, d);
  rstd.resize(n);
  y.resize(n, d);
  ConstRowMap g(gamma, d), b(beta, d);
  for (Eigen::Index t = 0; t < n; ++t) {
    const float mean = x.row(t).mean();
    const float var = (x.row(t).array() - mean).square().mean();
    const float r = 1.0f / std::sqrt(var + kLayerNormEps);
    rstd(t) = r;
    x_hat.row(t) = (x.row(t).array() - mean) * r;
    y.row(t) = x_hat.row(t).array() * g.array() + b.array();
  }
}

// dx = d loss / d x of y = LN(x) given dy; dgamma / dbeta accumulate.
void LayerNormBackward(const Mat& dy, const Mat& x_hat, const ColVec& rstd, const float* gamma,
                       float* dgamma, float* dbeta, Mat& dx) {
  const Eigen::Index n = dy.rows(), d = dy.cols();
  ConstRowMap g(gamma, d);
  RowMap dg(dgamma, d), db(dbeta, d);
  dg += (dy.array() * x_hat.array()).colwise().sum().matrix();
  db += dy.colwise().sum();
  dx.resize(n, d);
  for (Eigen::Index t = 0; t < n; ++t) {
    RowVec gy = dy.row(t).array() * g.array();
    const float m1 = gy.mean();
    const float m2 = (gy.array() * x_hat.row(t).array()).mean();
    dx.row(t) = rstd(t) * (gy.array() - m1 - x_hat.row(t).array() * m2);
  }
}

// Inverted dropout mask (0 or 1 / (1 - rate)); empty when not training.
void DropoutMask(Mat& mask, Eigen::Index n, Eigen::Index d, float rate, Rng* rng) {
  if (rng == nullptr || rate <= 0.0f) {
    mask.resize(0, 0);
    return;
  }
  mask.resize(n, d);
  const float keep = 1.0f / (1.0f - rate);
  float* data = mask.data();
  for (Eigen::Index e = 0; e < n * d; ++e) data[e] = rng->UniformFloat() < rate ? 0.0f : keep;
}

void ApplyMask(Mat& x, const Mat& mask) {
  if (mask.size() > 0) x.array() *= mask.array();
}

// C = op(A) op(B) + beta C on row-major storage, op(A) m x k, through OpenBLAS: it
// dispatches on the CPU at run time (AVX2 / AVX-512), where Eigen is compiled for the
// portable baseline; single-threaded (FactorModel::UseSingleThreadedBlas), we
// parallelise over shards. lda / ldb / ldc are row strides (a head is a column slice).
inline void Gemm(bool trans_a, bool trans_b, Eigen::Index m, Eigen::Index n, Eigen::Index k,
                 const float* a, Eigen::Index lda, const float* b, Eigen::Index ldb, float beta, float* c,
                 Eigen::Index ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda),
              b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// log(1 + exp(x)) without overflow.
inline double Softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// The network: forward over `items` (oldest first, at most max_len), filling ws.z
// (n x d, the final layer-normed states). With rng != null, dropout is applied.
class Network {
 public:
  Network(const SasRecModel::Layout& layout, const float* item_emb, const float* net, float dropout)
      : l_(layout), item_emb_(item_emb), net_(net), dropout_(dropout) {}

  void Forward(std::span<const ItemIndex> items, Rng* rng, Workspace& ws) const {
    const auto d = static_cast<Eigen::Index>(l_.d);
    const auto n = static_cast<Eigen::Index>(items.size());
    const float emb_scale = std::sqrt(static_cast<float>(l_.d));
    const std::size_t first_position = l_.max_len - items.size();
    ws.blocks.resize(l_.blocks);
    Mat* x = &ws.blocks[0].x_in;
    x->resize(n, d);
    for (Eigen::Index t = 0; t < n; ++t) {
      ConstRowMap e(item_emb_ + static_cast<std::size_t>(items[t]) * l_.d, d);
      ConstRowMap pos(net_ + l_.positions + (first_position + t) * l_.d, d);
      x->row(t) = emb_scale * e + pos;
    }
    DropoutMask(ws.x0_mask, n, d, dropout_, rng);
    ApplyMask(*x, ws.x0_mask);
    const auto heads = static_cast<Eigen::Index>(l_.heads);
    const Eigen::Index dh = d / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    for (std::size_t b = 0; b < l_.blocks; ++b) {
      BlockCache& c = ws.blocks[b];
      const float* w = net_ + l_.block_begin + b * l_.block_size;
      LayerNormForward(c.x_in, w + l_.ln1_g, w + l_.ln1_b, c.a_hat, c.a_rstd, c.a);
      c.q.resize(n, d);
      Gemm(false, false, n, d, d, c.a.data(), d, w + l_.wq, d, 0.0f, c.q.data(), d);
      c.q.rowwise() += ConstRowMap(w + l_.bq, d);
      c.k.resize(n, d);
      Gemm(false, false, n, d, d, c.a.data(), d, w + l_.wk, d, 0.0f, c.k.data(), d);
      c.k.rowwise() += ConstRowMap(w + l_.bk, d);
      c.v.resize(n, d);
      Gemm(false, false, n, d, d, c.a.data(), d, w + l_.wv, d, 0.0f, c.v.data(), d);
      c.v.rowwise() += ConstRowMap(w + l_.bv, d);
      c.p.resize(l_.heads);
      c.o.resize(n, d);
      for (Eigen::Index h = 0; h < heads; ++h) {
        Mat& p = c.p[h];
        p.resize(n, n);
        Gemm(false, true, n, n, dh, c.q.data() + h * dh, d, c.k.data() + h * dh, d, 0.0f, p.data(), n);
        for (Eigen::Index t = 0; t < n; ++t) {  // causal softmax over j <= t
          auto row = p.row(t);
          const float top = (row.head(t + 1) * scale).maxCoeff();
          float sum = 0;
          for (Eigen::Index j = 0; j <= t; ++j) {
            row(j) = std::exp(row(j) * scale - top);
            sum += row(j);
          }
          row.head(t + 1) /= sum;
          row.tail(n - t - 1).setZero();
        }
        Gemm(false, false, n, dh, n, p.data(), n, c.v.data() + h * dh, d, 0.0f, c.o.data() + h * dh, d);
      }
      BlockCache* next_cache = b + 1 < l_.blocks ? &ws.blocks[b + 1] : nullptr;
      Mat& out = next_cache != nullptr ? next_cache->x_in : ws.x_out;
      c.x_mid.resize(n, d);
      Gemm(false, false, n, d, d, c.o.data(), d, w + l_.wo, d, 0.0f, c.x_mid.data(), d);
      c.x_mid.rowwise() += ConstRowMap(w + l_.bo, d);
      DropoutMask(c.att_mask, n, d, dropout_, rng);
      ApplyMask(c.x_mid, c.att_mask);
      c.x_mid += c.x_in;
      LayerNormForward(c.x_mid, w + l_.ln2_g, w + l_.ln2_b, c.b_hat, c.b_rstd, c.b);
      c.h_pre.resize(n, d);
      Gemm(false, false, n, d, d, c.b.data(), d, w + l_.w1, d, 0.0f, c.h_pre.data(), d);
      c.h_pre.rowwise() += ConstRowMap(w + l_.b1, d);
      c.h = c.h_pre.cwiseMax(0.0f);
      DropoutMask(c.h_mask, n, d, dropout_, rng);
      ApplyMask(c.h, c.h_mask);
      out.resize(n, d);
      Gemm(false, false, n, d, d, c.h.data(), d, w + l_.w2, d, 0.0f, out.data(), d);
      out.rowwise() += ConstRowMap(w + l_.b2, d);
      DropoutMask(c.f_mask, n, d, dropout_, rng);
      ApplyMask(out, c.f_mask);
      out += c.x_mid;
    }
    LayerNormForward(ws.x_out, net_ + l_.final_g, net_ + l_.final_b, ws.z_hat, ws.z_rstd, ws.z);
  }

  // Backward from ws.dz (n x d, d loss / d z) after Forward(items, ...): accumulates the
  // network gradient into grad_net and the embedding gradient into grad_emb.
  void Backward(std::span<const ItemIndex> items, Workspace& ws, float* grad_emb,
                float* grad_net) const {
    const auto d = static_cast<Eigen::Index>(l_.d);
    const auto n = static_cast<Eigen::Index>(items.size());
    const auto heads = static_cast<Eigen::Index>(l_.heads);
    const Eigen::Index dh = d / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    LayerNormBackward(ws.dz, ws.z_hat, ws.z_rstd, net_ + l_.final_g, grad_net + l_.final_g,
                      grad_net + l_.final_b, ws.dx);
    for (std::size_t bi = l_.blocks; bi-- > 0;) {
      BlockCache& c = ws.blocks[bi];
      const float* w = net_ + l_.block_begin + bi * l_.block_size;
      float* g = grad_net + l_.block_begin + bi * l_.block_size;
      // Feed-forward sublayer: out = x_mid + mask_f (h W2 + b2).
      ws.df = ws.dx;
      ApplyMask(ws.df, c.f_mask);
      Gemm(true, false, d, d, n, c.h.data(), d, ws.df.data(), d, 1.0f, g + l_.w2, d);
      RowMap(g + l_.b2, d) += ws.df.colwise().sum();
      ws.dh.resize(n, d);
      Gemm(false, true, n, d, d, ws.df.data(), d, w + l_.w2, d, 0.0f, ws.dh.data(), d);
      ApplyMask(ws.dh, c.h_mask);
      ws.dh.array() *= (c.h_pre.array() > 0.0f).cast<float>();
      Gemm(true, false, d, d, n, c.b.data(), d, ws.dh.data(), d, 1.0f, g + l_.w1, d);
      RowMap(g + l_.b1, d) += ws.dh.colwise().sum();
      ws.dbn.resize(n, d);
      Gemm(false, true, n, d, d, ws.dh.data(), d, w + l_.w1, d, 0.0f, ws.dbn.data(), d);
      LayerNormBackward(ws.dbn, c.b_hat, c.b_rstd, w + l_.ln2_g, g + l_.ln2_g, g + l_.ln2_b, ws.dtmp);
      ws.dx += ws.dtmp;  // now d loss / d x_mid
      // Attention sublayer: x_mid = x_in + mask_a (o Wo + bo).
      ws.datt = ws.dx;
      ApplyMask(ws.datt, c.att_mask);
      Gemm(true, false, d, d, n, c.o.data(), d, ws.datt.data(), d, 1.0f, g + l_.wo, d);
      RowMap(g + l_.bo, d) += ws.datt.colwise().sum();
      ws.d_o.resize(n, d);
      Gemm(false, true, n, d, d, ws.datt.data(), d, w + l_.wo, d, 0.0f, ws.d_o.data(), d);
      ws.dq.resize(n, d);
      ws.dk.resize(n, d);
      ws.dv.resize(n, d);
      for (Eigen::Index h = 0; h < heads; ++h) {
        const Mat& p = c.p[h];
        const float* d_oh = ws.d_o.data() + h * dh;
        ws.dp.resize(n, n);
        Gemm(false, true, n, n, dh, d_oh, d, c.v.data() + h * dh, d, 0.0f, ws.dp.data(), n);
        Gemm(true, false, n, dh, n, p.data(), n, d_oh, d, 0.0f, ws.dv.data() + h * dh, d);
        ws.ds.resize(n, n);
        for (Eigen::Index t = 0; t < n; ++t) {
          const float dot = ws.dp.row(t).dot(p.row(t));
          ws.ds.row(t) = (p.row(t).array() * (ws.dp.row(t).array() - dot)) * scale;
        }
        Gemm(false, false, n, dh, n, ws.ds.data(), n, c.k.data() + h * dh, d, 0.0f, ws.dq.data() + h * dh, d);
        Gemm(true, false, n, dh, n, ws.ds.data(), n, c.q.data() + h * dh, d, 0.0f, ws.dk.data() + h * dh, d);
      }
      Gemm(true, false, d, d, n, c.a.data(), d, ws.dq.data(), d, 1.0f, g + l_.wq, d);
      RowMap(g + l_.bq, d) += ws.dq.colwise().sum();
      Gemm(true, false, d, d, n, c.a.data(), d, ws.dk.data(), d, 1.0f, g + l_.wk, d);
      RowMap(g + l_.bk, d) += ws.dk.colwise().sum();
      Gemm(true, false, d, d, n, c.a.data(), d, ws.dv.data(), d, 1.0f, g + l_.wv, d);
      RowMap(g + l_.bv, d) += ws.dv.colwise().sum();
      ws.da.resize(n, d);
      Gemm(false, true, n, d, d, ws.dq.data(), d, w + l_.wq, d, 0.0f, ws.da.data(), d);
      Gemm(false, true, n, d, d, ws.dk.data(), d, w + l_.wk, d, 1.0f, ws.da.data(), d);
      Gemm(false, true, n, d, d, ws.dv.data(), d, w + l_.wv, d, 1.0f, ws.da.data(), d);
      LayerNormBackward(ws.da, c.a_hat, c.a_rstd, w + l_.ln1_g, g + l_.ln1_g, g + l_.ln1_b, ws.dtmp);
      ws.dx += ws.dtmp;  // now d loss / d x_in
    }
    ApplyMask(ws.dx, ws.x0_mask);
    const float emb_scale = std::sqrt(static_cast<float>(l_.d));
    const std::size_t first_position = l_.max_len - items.size();
    for (Eigen::Index t = 0; t < n; ++t) {
      RowMap(grad_emb + static_cast<std::size_t>(items[t]) * l_.d, d) += emb_scale * ws.dx.row(t);
      RowMap(grad_net + l_.positions + (first_position + t) * l_.d, d) += ws.dx.row(t);
    }
  }

 const float* item_emb() const { return item_emb_; }

 private:
  const SasRecModel::Layout& l_;
  const float* item_emb_;
  const float* net_;
  float dropout_;
};

// The BCE loss of one window (summed over its positions) and, scaled by `scale`, its
// gradient accumulated into grad_emb / grad_net. `rng` drives dropout (null: none).
double WindowLoss(const Network& network, std::span<const ItemIndex> inputs,
                  std::span<const ItemIndex> targets, std::span<const ItemIndex> negatives, Rng* rng,
                  float scale, Workspace& ws, float* grad_emb, float* grad_net) {
  network.Forward(inputs, rng, ws);
  const Eigen::Index n = ws.z.rows(), d = ws.z.cols();
  ws.dz.resize(n, d);
  double loss = 0;
  for (Eigen::Index t = 0; t < n; ++t) {
    ConstRowMap e_pos(network.item_emb() + static_cast<std::size_t>(targets[t]) * d, d);
    ConstRowMap e_neg(network.item_emb() + static_cast<std::size_t>(negatives[t]) * d, d);
    const float pos_logit = ws.z.row(t).dot(e_pos);
    const float neg_logit = ws.z.row(t).dot(e_neg);
    loss += Softplus(-pos_logit) + Softplus(neg_logit);
    const float g_pos = (Sigmoid(pos_logit) - 1.0f) * scale;
    const float g_neg = Sigmoid(neg_logit) * scale;
    ws.dz.row(t) = g_pos * e_pos + g_neg * e_neg;
    RowMap(grad_emb + static_cast<std::size_t>(targets[t]) * d, d) += g_pos * ws.z.row(t);
    RowMap(grad_emb + static_cast<std::size_t>(negatives[t]) * d, d) += g_neg * ws.z.row(t);
  }
  network.Backward(inputs, ws, grad_emb, grad_net);
  return loss;
}

// One training window: inputs sequence[begin, begin + length), targets shifted by one.
struct Window {
  UserIndex user;
  std::uint64_t begin;
  std::uint32_t length;
};

// Normal(0, std^2) entries from a stream of the seed (Box-Muller).
void FillNormal(float* out, std::size_t count, float std_dev, Rng& rng) {
  for (std::size_t e = 0; e < count; e += 2) {
    const double u1 = 1.0 - rng.Uniform(), u2 = rng.Uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    out[e] = static_cast<float>(std_dev * radius * std::cos(2 * std::numbers::pi * u2));
    if (e + 1 < count) out[e + 1] = static_cast<float>(std_dev * radius * std::sin(2 * std::numbers::pi * u2));
  }
}

}  // namespace

double SasRecWindowLossForTest(const SasRecModel::Layout& layout, std::span<const float> theta,
                                std::size_t n_items, std::span<const ItemIndex> inputs,
                                std::span<const ItemIndex> targets,
                                std::span<const ItemIndex> negatives, float dropout,
                                std::uint64_t seed, std::vector<float>* gradient) {
  const std::size_t emb_size = n_items * layout.d;
  std::vector<float> local(theta.size(), 0.0f);
  std::vector<float>& grad = gradient != nullptr ? *gradient : local;
  grad.assign(theta.size(), 0.0f);
  Network network(layout, theta.data(), theta.data() + emb_size, dropout);
  Workspace ws;
  Rng rng(seed);
  return WindowLoss(network, inputs, targets, negatives, dropout > 0 ? &rng : nullptr, 1.0f, ws,
                    grad.data(), grad.data() + emb_size);
}

SasRecModel::Layout SasRecModel::Layout::Make(std::size_t d, std::size_t heads, std::size_t blocks,
                                              std::size_t max_len) {
  Layout l;
  l.d = d;
  l.heads = heads;
  l.blocks = blocks;
  l.max_len = max_len;
  std::size_t at = 0;
  auto take = [&](std::size_t size) {
    std::size_t offset = at;
    at += size;
    return offset;
  };
  l.positions = take(max_len * d);
  l.block_begin = at;
  at = 0;  // offsets inside a block
  l.ln1_g = take(d), l.ln1_b = take(d);
  l.wq = take(d * d), l.bq = take(d), l.wk = take(d * d), l.bk = take(d);
  l.wv = take(d * d), l.bv = take(d), l.wo = take(d * d), l.bo = take(d);
  l.ln2_g = take(d), l.ln2_b = take(d);
  l.w1 = take(d * d), l.b1 = take(d), l.w2 = take(d * d), l.b2 = take(d);
  l.block_size = at;
  at = l.block_begin + blocks * l.block_size;
  l.final_g = take(d);
  l.final_b = take(d);
  l.total = at;
  return l;
}

std::vector<ParamField> SasRecModel::Fields() {
  return {
      IntParam("max_len", 50, 1, 4096, "Longest history the network reads (the newest items)",
               {"maxlen", "max_seq_len"}),
      IntParam("hidden", 64, 2, 1024, "Hidden size d (item embedding and every layer)",
               {"hidden_units", "factors", "dim"}),
      IntParam("blocks", 2, 1, 16, "Self-attention blocks", {"num_blocks", "layers"}),
      IntParam("heads", 1, 1, 64, "Attention heads (must divide hidden)", {"num_heads"}),
      IntParam("epochs", 20, 1, 100000, "Passes over the training windows", {"iterations", "iters"}),
      FloatParam("lr", 0.001, 1e-6, 1, "Adam learning rate", {"learning_rate"}),
      IntParam("batch", 128, 1, 1000000, "Windows per mini-batch", {"batch_size"}),
      FloatParam("dropout", 0.2, 0, 0.9, "Dropout rate (embeddings, attention and FFN outputs)",
                 {"dropout_rate"}),
      FloatParam("l2", 0.0, 0, 10, "L2 penalty l2/2 |E|^2 on the item embeddings, per batch",
                 {"l2_emb"}),
      FloatParam("beta1", 0.9, 0, 0.999999, "Adam first-moment decay"),
      FloatParam("beta2", 0.98, 0, 0.999999, "Adam second-moment decay"),
      ChoiceParam("windows", "all", {"all", "last"},
                  "Training windows per user: every max_len-pair window from the end, or only the "
                  "newest (the paper)"),
  };
}

void SasRecModel::FitImpl(const TrainingData& data, const Context& ctx,
                          const TrainCallback& callback) {
  const auto& p = params();
  const std::size_t d = static_cast<std::size_t>(p.Int("hidden"));
  const std::size_t heads = static_cast<std::size_t>(p.Int("heads"));
  if (d % heads != 0) {
    throw ConfigError(fmt::format("seq: hidden={} is not divisible by heads={}", d, heads));
  }
  const std::size_t blocks = static_cast<std::size_t>(p.Int("blocks"));
  const std::size_t max_len = static_cast<std::size_t>(p.Int("max_len"));
  const int epochs = static_cast<int>(p.Int("epochs"));
  const float lr = static_cast<float>(p.Float("lr"));
  const std::size_t batch = static_cast<std::size_t>(p.Int("batch"));
  const float dropout = static_cast<float>(p.Float("dropout"));
  const float l2 = static_cast<float>(p.Float("l2"));
  const float beta1 = static_cast<float>(p.Float("beta1"));
  const float beta2 = static_cast<float>(p.Float("beta2"));
  const bool all_windows = p.Choice("windows") == "all";
  const int threads = std::max(1, ctx.threads);
  const std::size_t n_users = data.n_users, n_items = data.n_items;
  factors_ = d;
  layout_ = Layout::Make(d, heads, blocks, max_len);
  UseSingleThreadedBlas();

  // Each user's training sequence, ordered by (time, item).
  std::vector<std::uint64_t> seq_offsets(n_users + 1, 0);
  std::vector<ItemIndex> seq_items;
  if (data.train != nullptr) {
    const data::Interactions& train = *data.train;
    std::vector<std::size_t> order(train.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (train.users[a] != train.users[b]) return train.users[a] < train.users[b];
      if (train.times[a] != train.times[b]) return train.times[a] < train.times[b];
      return train.items[a] < train.items[b];
    });
    seq_items.reserve(order.size());
    for (std::size_t row : order) {
      if (train.users[row] >= n_users || train.items[row] >= n_items) continue;
      ++seq_offsets[train.users[row] + 1];
      seq_items.push_back(train.items[row]);
    }
  } else {  // no times: the training matrix's item order
    const CsrMatrix& matrix = *data.user_items;
    for (std::size_t user = 0; user < n_users; ++user) {
      auto row = matrix.RowIndices(user);
      seq_items.insert(seq_items.end(), row.begin(), row.end());
      seq_offsets[user + 1] = row.size();
    }
  }
  for (std::size_t user = 0; user < n_users; ++user) seq_offsets[user + 1] += seq_offsets[user];

  std::vector<Window> windows;
  for (std::size_t user = 0; user < n_users; ++user) {
    const std::uint64_t length = seq_offsets[user + 1] - seq_offsets[user];
    if (length < 2) continue;
    std::uint64_t pairs_end = length - 1;  // pairs (i, i + 1) for i < pairs_end
    while (pairs_end > 0) {
      const std::uint64_t count = std::min<std::uint64_t>(max_len, pairs_end);
      windows.push_back({static_cast<UserIndex>(user), seq_offsets[user] + pairs_end - count,
                         static_cast<std::uint32_t>(count)});
      pairs_end -= count;
      if (!all_windows) break;
    }
  }

  // Parameters: theta = [E (n_items x d) | network], Adam moments alike.
  const std::size_t emb_size = n_items * d;
  const std::size_t total = emb_size + layout_.total;
  std::vector<float> theta(total, 0.0f), moment1(total, 0.0f), moment2(total, 0.0f);
  {
    Rng rng(DeriveSeed(ctx.seed, kInitStream));
    // Xavier-normal, as the reference implementation: std = sqrt(2 / (fan_in + fan_out)).
    FillNormal(theta.data(), emb_size, std::sqrt(2.0f / static_cast<float>(n_items + d)), rng);
    float* net = theta.data() + emb_size;
    FillNormal(net + layout_.positions, max_len * d,
               std::sqrt(2.0f / static_cast<float>(max_len + d)), rng);
    const float w_std = std::sqrt(1.0f / static_cast<float>(d));
    for (std::size_t b = 0; b < blocks; ++b) {
      float* w = net + layout_.block_begin + b * layout_.block_size;
      for (std::size_t offset : {layout_.ln1_g, layout_.ln2_g}) std::fill_n(w + offset, d, 1.0f);
      for (std::size_t offset : {layout_.wq, layout_.wk, layout_.wv, layout_.wo, layout_.w1, layout_.w2}) {
        FillNormal(w + offset, d * d, w_std, rng);
      }
    }
    std::fill_n(net + layout_.final_g, d, 1.0f);
  }

  std::vector<float> user_vectors;
  auto publish = [&] {
    item_factors_.assign(theta.begin(), theta.begin() + static_cast<std::ptrdiff_t>(emb_size));
    network_.assign(theta.begin() + static_cast<std::ptrdiff_t>(emb_size), theta.end());
    // Each user's final state over its training sequence, in parallel over users.
    user_factors_.assign(n_users * d, 0.0f);
    Network network(layout_, item_factors_.data(), network_.data(), 0.0f);
    constexpr std::size_t kUserBlock = 32;
    const double work = static_cast<double>(seq_items.size()) * static_cast<double>(d * d * blocks);
    ParallelFor<std::size_t>(
        0, (n_users + kUserBlock - 1) / kUserBlock, work >= kParallelBatchWork ? threads : 1,
        [&](std::size_t block) {
          Workspace ws;
          for (std::size_t user = block * kUserBlock; user < std::min(n_users, (block + 1) * kUserBlock);
               ++user) {
            std::uint64_t begin = seq_offsets[user], end = seq_offsets[user + 1];
            if (begin == end) continue;
            begin = std::max<std::uint64_t>(begin, end > max_len ? end - max_len : 0);
            network.Forward(std::span<const ItemIndex>(seq_items.data() + begin, end - begin), nullptr, ws);
            std::copy_n(ws.z.data() + (ws.z.rows() - 1) * ws.z.cols(), d,
                        user_factors_.data() + user * d);
          }
        },
        Schedule::kDynamic, 1);
    FactorsChanged();
  };

  const CsrMatrix& seen_matrix = *data.user_items;
  std::vector<std::vector<float>> grads(static_cast<std::size_t>(threads));
  std::vector<Workspace> workspaces(static_cast<std::size_t>(threads));
  std::vector<double> shard_loss(static_cast<std::size_t>(threads));
  std::vector<std::uint32_t> order(windows.size());
  std::uint64_t step = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), 0u);
    Rng shuffle(DeriveSeed(ctx.seed, kShuffleStream + static_cast<std::uint64_t>(epoch)));
    for (std::size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[shuffle.Below(k)]);
    double epoch_loss = 0;
    std::uint64_t epoch_positions = 0;
    for (std::size_t batch_begin = 0; batch_begin < order.size(); batch_begin += batch) {
      const std::size_t batch_end = std::min(order.size(), batch_begin + batch);
      std::uint64_t positions = 0;
      for (std::size_t k = batch_begin; k < batch_end; ++k) positions += windows[order[k]].length;
      const float inv_positions = 1.0f / static_cast<float>(positions);
      const std::size_t shards = std::min<std::size_t>(static_cast<std::size_t>(threads), batch_end - batch_begin);
      const float* net = theta.data() + emb_size;
      Network network(layout_, theta.data(), net, dropout);
      const double work = static_cast<double>(positions) * static_cast<double>(d * d * blocks);
      const int batch_threads = work >= kParallelBatchWork ? threads : 1;
      ParallelFor<std::size_t>(0, shards, batch_threads, [&](std::size_t shard) {
        std::vector<float>& grad = grads[shard];
        grad.assign(total, 0.0f);
        Workspace& ws = workspaces[shard];
        std::vector<ItemIndex> negatives;
        double loss = 0;
        const std::size_t count = batch_end - batch_begin;
        const std::size_t first = batch_begin + shard * count / shards;
        const std::size_t last = batch_begin + (shard + 1) * count / shards;
        for (std::size_t k = first; k < last; ++k) {
          const std::uint32_t window_id = order[k];
          const Window& window = windows[window_id];
          Rng rng(DeriveSeed(ctx.seed, kWindowStream ^ (static_cast<std::uint64_t>(epoch) << 40) ^ window_id));
          std::span<const ItemIndex> inputs(seq_items.data() + window.begin, window.length);
          std::span<const ItemIndex> targets(seq_items.data() + window.begin + 1, window.length);
          const auto seen = seen_matrix.RowIndices(window.user);
          negatives.resize(window.length);
          for (auto& negative : negatives) {
            negative = static_cast<ItemIndex>(rng.Below(n_items));
            for (int attempt = 1;
                 attempt < kNegativeTries && std::binary_search(seen.begin(), seen.end(), negative);
                 ++attempt) {
              negative = static_cast<ItemIndex>(rng.Below(n_items));
            }
          }
          loss += WindowLoss(network, inputs, targets, negatives, &rng, inv_positions, ws, grad.data(),
                             grad.data() + emb_size);
        }
        shard_loss[shard] = loss;
      });
      for (std::size_t shard = 0; shard < shards; ++shard) epoch_loss += shard_loss[shard];
      epoch_positions += positions;
      // Reduce in shard order and take one Adam step, element-wise in parallel (each
      // element's arithmetic is the same whatever the split).
      ++step;
      const float correction1 = 1.0f - std::pow(beta1, static_cast<float>(step));
      const float correction2 = 1.0f - std::pow(beta2, static_cast<float>(step));
      const float step_size = lr / correction1;
      const float inv_sqrt_c2 = 1.0f / std::sqrt(correction2);
      constexpr std::size_t kChunk = 1 << 14;
      const int update_threads = total >= kParallelElements ? threads : 1;
      ParallelFor<std::size_t>(0, (total + kChunk - 1) / kChunk, update_threads, [&](std::size_t chunk) {
        const std::size_t begin = chunk * kChunk, end = std::min(total, begin + kChunk);
        float* g0 = grads[0].data();
        for (std::size_t shard = 1; shard < shards; ++shard) {
          const float* gs = grads[shard].data();
          for (std::size_t e = begin; e < end; ++e) g0[e] += gs[e];
        }
        for (std::size_t e = begin; e < end; ++e) {
          float g = g0[e];
          if (e < emb_size) g += l2 * theta[e];
          moment1[e] = beta1 * moment1[e] + (1.0f - beta1) * g;
          moment2[e] = beta2 * moment2[e] + (1.0f - beta2) * g * g;
          theta[e] -= step_size * moment1[e] / (std::sqrt(moment2[e]) * inv_sqrt_c2 + kAdamEps);
        }
      });
    }
    const double loss = epoch_positions > 0 ? epoch_loss / static_cast<double>(epoch_positions) : 0.0;
    if (!std::isfinite(loss)) {
      throw InvalidArgument(fmt::format("seq: training diverged (non-finite loss); lower lr (now {})",
                                        p.values().at("lr")));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.log().Debug("seq epoch {}/{}: loss {:.5f}, {} windows, {:.3f} s", epoch, epochs, loss,
                    windows.size(), seconds);
    if (callback) {
      publish();
      EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, loss);
      report.metrics["positions"] = static_cast<double>(epoch_positions);
      callback(*this, report);
    }
  }
  publish();
}

bool SasRecModel::FoldIn(std::span<const ItemIndex> items, std::span<const float>, float* user_vector,
                         float* user_bias) const {
  *user_bias = 0.0f;
  const std::size_t d = factors_;
  std::fill_n(user_vector, d, 0.0f);
  if (items.empty() || network_.size() != layout_.total || d == 0) return true;
  if (items.size() > layout_.max_len) items = items.subspan(items.size() - layout_.max_len);
  Network network(layout_, item_factors_.data(), network_.data(), 0.0f);
  Workspace ws;
  network.Forward(items, nullptr, ws);
  std::copy_n(ws.z.data() + (ws.z.rows() - 1) * ws.z.cols(), d, user_vector);
  return true;
}

void SasRecModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<std::uint64_t>(layout_.d);
  writer.Write<std::uint64_t>(layout_.heads);
  writer.Write<std::uint64_t>(layout_.blocks);
  writer.Write<std::uint64_t>(layout_.max_len);
  writer.WriteVector(network_);
}

void SasRecModel::LoadExtra(ModelReader& reader) {
  const auto d = reader.Read<std::uint64_t>();
  const auto heads = reader.Read<std::uint64_t>();
  const auto blocks = reader.Read<std::uint64_t>();
  const auto max_len = reader.Read<std::uint64_t>();
  network_ = reader.ReadVector<float>();
  if (d != factors_ || heads == 0 || d % heads != 0 || blocks == 0 || max_len == 0 ||
      d > 4096 || blocks > 64 || max_len > (1u << 20)) {
    throw FormatError(reader.source() + ": seq network shape is invalid");
  }
  layout_ = Layout::Make(d, heads, blocks, max_len);
  if (network_.size() != layout_.total) {
    throw FormatError(reader.source() + ": seq network has the wrong size");
  }
}

}  // namespace recforge::models

// `seq`: SASRec, self-attentive sequential recommendation (Kang & McAuley, ICDM 2018),
// a next-item model over each user's recent history, with hand-derived gradients
// (Eigen for the element-wise work, OpenBLAS sgemm for the products;
// docs/models/sequence.md says why not LibTorch).
//
// Model, for a history x_1..x_n (oldest first, truncated to the last max_len items;
// positions are aligned to the end, so the newest item always has position max_len):
//   X0_t = dropout(sqrt(d) E[x_t] + P[max_len - n + t])
//   per block (pre-layer-norm residual blocks, the paper's g(x) = x + Dropout(g(LN(x)))):
//     A = LN1(X);  X = X + dropout(MultiHeadCausalAttention(A) Wo + bo)
//     B = LN2(X);  X = X + dropout(ReLU_dropout(B W1 + b1) W2 + b2)
//   F = LN_final(X);  score(next item = i | history) = F_n . E[i]
// E (n_items x d) is shared by input and output, as in the paper. Attention heads
// split d into heads x d/heads; position t attends to positions <= t only.
//
// Training: every user's training rows ordered by (time, item) form one sequence; its
// (input, next item) pairs are cut from the end into windows of max_len pairs
// (windows=all: every window; windows=last: only the newest, the paper's choice). Each
// position's loss is the binary cross-entropy of its next item against one negative
// drawn uniformly from the items the user never trained on (up to 8 draws):
//   -log sigmoid(F_t . E[y_t]) - log(1 - sigmoid(F_t . E[z_t])),
// averaged over the positions of a mini-batch of `batch` windows, plus l2/2 |E|^2,
// minimised by Adam (beta1, beta2, eps 1e-8). The loss reported per epoch is the mean
// BCE over all positions of the epoch (before their updates).
//
// Determinism: windows are shuffled per epoch from the seed; a window's dropout masks
// and negatives come from a stream derived from (seed, epoch, window), so they do not
// depend on the thread count. A batch is split into `threads` contiguous shards, each
// accumulating its gradient in its own buffer; the buffers are summed in shard order,
// so the same seed + the same threads give the same model.
//
// Scoring: at the end of Fit (and before every training callback) each user's final
// state F_n over its training sequence is computed (no dropout) and kept as its user
// vector, so ScoreUsers / Recommend are the FactorModel dot products against E.
// ScoreHistory / FoldIn run the network on an ad-hoc history (items oldest first,
// values ignored, repeats kept) - serve's context_items go through it. A user without
// training rows and an empty history have the zero vector (every item scores 0, ties
// to the smaller index). SimilarItems: cosine of item embeddings.
//
// Cost: an epoch is O(positions x blocks x (max_len d + d^2)) time; memory: the
// parameters (n_items d + max_len d + blocks (6 d^2 + 13 d)) x 4 floats (value, Adam
// moments) plus one gradient copy per thread. Thread-safety: const methods are safe
// concurrently (each call allocates its own scratch).
#pragma once

#include <cstdint>
#include <vector>

#include "../factor/factor_model.h"

namespace recforge::models {

class SasRecModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit SasRecModel(ParamValues params) : FactorModel(std::move(params)) {}

  // Where each parameter lives in the flat network vector (everything except E).
  struct Layout {
    std::size_t d = 0, heads = 0, blocks = 0, max_len = 0;
    std::size_t positions = 0;  // P: max_len x d
    std::size_t block_begin = 0, block_size = 0;
    // Offsets inside one block.
    std::size_t ln1_g = 0, ln1_b = 0, wq = 0, bq = 0, wk = 0, bk = 0, wv = 0, bv = 0, wo = 0,
                bo = 0, ln2_g = 0, ln2_b = 0, w1 = 0, b1 = 0, w2 = 0, b2 = 0;
    std::size_t final_g = 0, final_b = 0;
    std::size_t total = 0;
    static Layout Make(std::size_t d, std::size_t heads, std::size_t blocks, std::size_t max_len);
  };

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;
  // The network's final state over the last max_len items of `items` (oldest first).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: u64 d | u64 heads | u64 blocks | u64 max_len | f32 vector network
  // (Layout order: P, then per block ln1 gamma/beta, Wq bq Wk bk Wv bv Wo bo, ln2
  // gamma/beta, W1 b1 W2 b2, then the final layer norm gamma/beta).
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  Layout layout_;
  std::vector<float> network_;  // Layout::total floats
};

// For the gradient check (tests only): the summed BCE loss of one window - inputs,
// their next items `targets` and one negative per position - under the parameters
// theta = [E (n_items x d) | network (layout.total)], with dropout masks drawn from
// `seed` when dropout > 0; the exact gradient of that loss goes into *gradient
// (resized to theta.size()) when it is not null.
double SasRecWindowLossForTest(const SasRecModel::Layout& layout, std::span<const float> theta,
                                std::size_t n_items, std::span<const ItemIndex> inputs,
                                std::span<const ItemIndex> targets,
                                std::span<const ItemIndex> negatives, float dropout,
                                std::uint64_t seed, std::vector<float>* gradient);

}  // namespace recforge::models

// The NeuMF network of `ncf` (He et al., WWW 2017) and its hand-derived backward pass,
// on mini-batches of (user, item) rows, with Eigen matrix products.
//
//   GMF tower:  g = p_u (.) q_i                                 (f = gmf_factors)
//   MLP tower:  x_0 = [p'_u, q'_i]                              (2 m, m = mlp_factors)
//               x_l = dropout(relu(W_l x_{l-1} + b_l)),  l = 1..L (widths hidden[l-1])
//   output:     s = w . [g, x_L] + b                            (the logit)
//
// `gmf` / `mlp` drop one tower (the paper's GMF and MLP models). Dropout is inverted
// (kept units scaled by 1 / (1 - p)) and only applied when Forward gets an Rng.
//
// Backward (derived by hand; tests/unit/models/neural/ncf_test.cc checks it against
// central finite differences): with d = dL/ds per row,
//   dw = sum_r d_r [g_r, x_L,r];  db = sum_r d_r
//   dg = d w_g^T  ->  dp_u = dg (.) q_i,  dq_i = dg (.) p_u
//   dx_L = d w_m^T;  for l = L..1:  dz_l = dx_l (.) mask_l (.) [x_l > 0],
//     dW_l += dz_l^T x_{l-1},  db_l += colsum(dz_l),  dx_{l-1} = dz_l W_l
//   dx_0 = [dp'_u, dq'_i].
//
// Not thread-safe on a Workspace; Parameters are read-only in Forward / Backward, so
// many threads may run them at once with their own workspaces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../factor/eigen.h"
#include "recforge/core/random.h"
#include "recforge/core/types.h"

namespace recforge::models::ncf {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Shape {
  bool use_gmf = true;
  bool use_mlp = true;
  std::size_t gmf_factors = 0;      // f (0 when !use_gmf)
  std::size_t mlp_factors = 0;      // m, per side (0 when !use_mlp)
  std::vector<std::size_t> hidden;  // h_1..h_L (empty when !use_mlp)

  std::size_t GmfWidth() const { return use_gmf ? gmf_factors : 0; }
  std::size_t MlpWidth() const { return use_mlp && !hidden.empty() ? hidden.back() : 0; }
  // Width of the output layer's input [g, x_L].
  std::size_t FinalWidth() const { return GmfWidth() + MlpWidth(); }
  // Input width of hidden layer l (0-based).
  std::size_t LayerInput(std::size_t l) const { return l == 0 ? 2 * mlp_factors : hidden[l - 1]; }
};

// Offsets of the dense parameters in one flat vector: per hidden layer W_l (h_l x
// in_l, row-major) then b_l; then the output weights w (FinalWidth: GMF part first)
// and the output bias.
struct DenseLayout {
  std::vector<std::size_t> weight, bias;
  std::size_t out_weight = 0, out_bias = 0, size = 0;
  static DenseLayout For(const Shape& shape);
};

struct Parameters {
  Shape shape;
  DenseLayout layout;
  std::size_t n_users = 0, n_items = 0;
  std::vector<float> user_gmf, item_gmf;  // n x f, row-major (empty without GMF)
  std::vector<float> user_mlp, item_mlp;  // n x m (empty without MLP)
  std::vector<float> dense;               // layout.size

  // Embeddings ~ N(0, init_std^2) (the paper's initialisation); hidden layers
  // Xavier-uniform, output layer U(+-sqrt(3 / fan_in)) (as the reference PyTorch
  // NeuMF), biases 0. Row r of a table is drawn from its own stream, so the result does
  // not depend on `threads`.
  void Initialize(const Shape& shape, std::size_t n_users, std::size_t n_items, float init_std,
                  std::uint64_t seed, int threads);
};

// Activations of one slice of rows, kept for the backward pass, and its scratch.
struct Workspace {
  std::size_t rows = 0;
  RowMatrix gmf;                // rows x f
  std::vector<RowMatrix> x;     // x[0]: rows x 2m input; x[l]: rows x h_l (after dropout)
  std::vector<RowMatrix> mask;  // dropout scales per hidden layer (empty without dropout)
  Eigen::VectorXf logits;       // rows
  RowMatrix grad_a, grad_b;     // backward scratch
};

// Row-major C[m x n] = op(A) op(B) + beta C (op = transpose when asked; A is m x k
// after op, B k x n) through OpenBLAS: it dispatches on the CPU at run time, while
// Eigen's own products are compiled for the portable baseline (SSE2). Called from
// many threads at once (OpenBLAS runs single-threaded inside our ParallelFor).
void Gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a,
          const float* b, float beta, float* c);

// Logits of rows (users[r], items[r]) into ws.logits. With `dropout` > 0 and a
// non-null rng, the hidden units are dropped (training); otherwise deterministic.
void Forward(const Parameters& params, std::span<const UserIndex> users,
             std::span<const ItemIndex> items, float dropout, Rng* rng, Workspace& ws);

// Backward pass of the last Forward on `ws` for dL/ds = dlogits[r]: adds the dense
// gradient to dense_grad (layout.size floats) and writes each row's embedding
// gradients (rows x f and rows x m, row-major; null when the tower is absent).
void Backward(const Parameters& params, std::span<const UserIndex> users,
              std::span<const ItemIndex> items, const float* dlogits, Workspace& ws,
              float* dense_grad, float* d_user_gmf, float* d_item_gmf, float* d_user_mlp,
              float* d_item_mlp);

}  // namespace recforge::models::ncf

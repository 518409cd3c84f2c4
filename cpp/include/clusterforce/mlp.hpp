// A small dense network (multilayer perceptron) for the neural kinds: forward pass and the
// vector-Jacobian product with respect to its input, which is what forces need, and the Jacobian of
// the last hidden layer's activations, which the sann last-layer uncertainty needs.
//
// Layer l maps h_{l-1} (n_in) to W_l h_{l-1} + b_l (n_out), W_l row-major (n_out x n_in); every
// layer but the last is followed by the activation: CELU (alpha = 1; x for x > 0, exp(x) - 1
// otherwise), the dart paper's, or the logistic sigmoid, the sann paper's. The Python trainers
// (clusterforce/kinds/dart/network.py, clusterforce/kinds/sann/network.py) use the same convention and store
// W_l, b_l as they are here.
#pragma once

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace clusterforce {

enum class Activation { celu, sigmoid };

class Mlp {
 public:
  Mlp() = default;
  /// weights[l]: n_out x n_in row-major; biases[l]: n_out. Consecutive layers must chain.
  Mlp(std::vector<std::vector<double>> weights, std::vector<std::vector<double>> biases,
      Activation activation = Activation::celu)
      : w_(std::move(weights)), b_(std::move(biases)), activation_(activation) {
    if (w_.empty() || w_.size() != b_.size())
      throw std::invalid_argument("MLP: need one bias per weight matrix, at least one layer");
    for (std::size_t l = 0; l < w_.size(); ++l) {
      const std::size_t out = b_[l].size();
      if (out == 0 || w_[l].size() % out != 0) {
        throw std::invalid_argument("MLP layer " + std::to_string(l) + ": " + std::to_string(w_[l].size()) +
                                    " weights do not fit " + std::to_string(out) + " outputs");
      }
      const std::size_t in = w_[l].size() / out;
      if (l > 0 && in != b_[l - 1].size()) {
        throw std::invalid_argument("MLP layer " + std::to_string(l) + " takes " + std::to_string(in) +
                                    " inputs but layer " + std::to_string(l - 1) + " gives " +
                                    std::to_string(b_[l - 1].size()));
      }
      sizes_.push_back(static_cast<int>(in));
    }
    sizes_.push_back(static_cast<int>(b_.back().size()));
  }

  int n_in() const { return sizes_.front(); }
  int n_out() const { return sizes_.back(); }

  /// Pre-activations of every layer, kept by forward() for input_gradient().
  struct Cache {
    std::vector<std::vector<double>> pre;
    std::vector<double> input;
  };

  /// out (n_out) = network(x); fills cache.
  void forward(const double* x, double* out, Cache& cache) const {
    const std::size_t n_layers = w_.size();
    cache.input.assign(x, x + n_in());
    cache.pre.resize(n_layers);
    std::vector<double> h(cache.input), next;
    for (std::size_t l = 0; l < n_layers; ++l) {
      const int in = sizes_[l], out_n = sizes_[l + 1];
      next.assign(out_n, 0.0);
      for (int o = 0; o < out_n; ++o) {
        const double* row = w_[l].data() + static_cast<std::size_t>(o) * in;
        double s = b_[l][o];
        for (int i = 0; i < in; ++i) s += row[i] * h[i];
        next[o] = s;
      }
      cache.pre[l] = next;
      if (l + 1 < n_layers)
        for (double& v : next) v = act(v);
      h.swap(next);
    }
    std::copy(h.begin(), h.end(), out);
  }

  /// grad_in (n_in) = J^T grad_out, J the network's Jacobian at the cached input.
  void input_gradient(const Cache& cache, const double* grad_out, double* grad_in) const {
    backward(cache, std::vector<double>(grad_out, grad_out + n_out()), w_.size(), grad_in);
  }

  /// Neurons of the last hidden layer (the inputs of the output layer).
  int n_last_hidden() const { return sizes_[sizes_.size() - 2]; }

  /// out (n_last_hidden) = activations of the last hidden layer at the cached input.
  void last_hidden(const Cache& cache, double* out) const {
    if (w_.size() < 2) throw std::logic_error("MLP: a network without hidden layers has no last hidden layer");
    const std::vector<double>& pre = cache.pre[w_.size() - 2];
    for (std::size_t k = 0; k < pre.size(); ++k) out[k] = act(pre[k]);
  }

  /// jac (n_last_hidden x n_in, row-major) = d a_L / d input at the cached input: one backward
  /// pass per last-hidden unit, through every layer below the output layer.
  void last_hidden_jacobian(const Cache& cache, double* jac) const {
    if (w_.size() < 2) throw std::logic_error("MLP: a network without hidden layers has no last hidden layer");
    const int h = n_last_hidden();
    for (int k = 0; k < h; ++k) {
      std::vector<double> seed(h, 0.0);
      seed[k] = 1.0;
      backward(cache, std::move(seed), w_.size() - 1, jac + static_cast<std::size_t>(k) * n_in());
    }
  }

 private:
  /// grad_in (n_in) = J^T g for the sub-network of the first `top` layers, g (the gradient w.r.t.
  /// that sub-network's output, after the activation if layer top - 1 is hidden).
  void backward(const Cache& cache, std::vector<double> g, std::size_t top, double* grad_in) const {
    std::vector<double> prev;
    for (std::size_t l = top; l-- > 0;) {
      if (l + 1 < w_.size())
        for (std::size_t o = 0; o < g.size(); ++o) g[o] *= dact(cache.pre[l][o]);
      const int in = sizes_[l], out_n = sizes_[l + 1];
      prev.assign(in, 0.0);
      for (int o = 0; o < out_n; ++o) {
        const double* row = w_[l].data() + static_cast<std::size_t>(o) * in;
        for (int i = 0; i < in; ++i) prev[i] += row[i] * g[o];
      }
      g.swap(prev);
    }
    std::copy(g.begin(), g.end(), grad_in);
  }

  double act(double x) const {
    if (activation_ == Activation::sigmoid) return 1.0 / (1.0 + std::exp(-x));
    return x > 0.0 ? x : std::expm1(x);
  }
  double dact(double x) const {
    if (activation_ == Activation::sigmoid) {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
    return x > 0.0 ? 1.0 : std::exp(x);
  }

  std::vector<std::vector<double>> w_, b_;
  Activation activation_ = Activation::celu;
  std::vector<int> sizes_;
};

}  // namespace clusterforce

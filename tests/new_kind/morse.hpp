// The test kind "morse" (tests/new_kind, docs/adding-a-kind.md): a pair potential per element
// pair, linear in its two amplitudes so that tests/new_kind/morse_kind/model.py fits them by least
// squares,
//
//   E = sum_i e0[s_i] + sum_{i<j} fc(r_ij) (A[s_i s_j] exp(-2 alpha (r_ij - r0)) + B[s_i s_j] exp(-alpha (r_ij - r0)))
//
// with the cosine cutoff fc(r) = (1 + cos(pi r / r_cut)) / 2 (value and slope vanish at r_cut);
// A = D, B = -2 D is a Morse well of depth D (eV) at r0. Compiled in with
// -DCLUSTERFORCE_EXTRA_KINDS=tests/new_kind/morse.hpp: the header is all a new kind adds to C++.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clusterforce/kinds.hpp"
#include "clusterforce/local_model.hpp"
#include "clusterforce/modelfile.hpp"

namespace clusterforce::test_kind {

class MorseModel : public LocalModel {
 public:
  MorseModel(int n_species, double r_cut, double alpha, double r0, std::vector<double> A, std::vector<double> B,
             std::vector<double> e0)
      : n_(n_species), r_cut_(r_cut), alpha_(alpha), r0_(r0), A_(std::move(A)), B_(std::move(B)), e0_(std::move(e0)) {}

  int n_species() const override { return n_; }
  double cutoff() const override { return r_cut_; }
  bool has_energy() const override { return true; }
  bool has_uncertainty() const override { return false; }

  /// e0 of the centre plus half of each pair term (eV); grad += d energy / d rel (eV/Angstrom).
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad, LocalScratch*) const override {
    const double pi = 3.14159265358979323846;
    double energy = e0_[cs];
    for (int j = 0; j < n; ++j) {
      const double* d = rel + 3 * j;
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      if (r >= r_cut_) continue;
      const std::size_t p = static_cast<std::size_t>(cs) * n_ + sp[j];
      const double x = std::exp(-alpha_ * (r - r0_));
      const double phi = A_[p] * x * x + B_[p] * x;
      const double dphi = -alpha_ * (2.0 * A_[p] * x * x + B_[p] * x);
      const double fc = 0.5 * (1.0 + std::cos(pi * r / r_cut_));
      const double dfc = -0.5 * pi / r_cut_ * std::sin(pi * r / r_cut_);
      energy += 0.5 * fc * phi;
      const double de_dr = 0.5 * (dfc * phi + fc * dphi);
      for (int k = 0; k < 3; ++k) grad[3 * j + k] += de_dr * d[k] / r;
    }
    return energy;
  }

 private:
  int n_;
  double r_cut_, alpha_, r0_;
  std::vector<double> A_, B_, e0_;  // A, B: n x n (eV), e0: n (eV)
};

/// The model of a "morse" file: arrays morse/A, morse/B (n x n), morse/e0 (n), metadata
/// hyperparameters r_cut, alpha, r0; ModelFileError naming the file and the field otherwise.
inline std::shared_ptr<const MorseModel> read_morse_model(const ModelFile& mf) {
  const int n = static_cast<int>(model_elements(mf).size());
  const Json& meta = mf.metadata();
  const auto number = [&](const char* name) {
    if (!meta.contains("hyperparameters") || !meta.at("hyperparameters").contains(name) ||
        !meta.at("hyperparameters").at(name).is_number())
      throw ModelFileError(mf.path() + ": metadata field 'hyperparameters/" + name + "' is missing or not a number");
    return meta.at("hyperparameters").at(name).as_double();
  };
  const double r_cut = number("r_cut");
  if (!(r_cut > 0.0)) throw ModelFileError(mf.path() + ": metadata field 'hyperparameters/r_cut' must be > 0");
  return std::make_shared<const MorseModel>(n, r_cut, number("alpha"), number("r0"), mf.f64("morse/A", {n, n}),
                                            mf.f64("morse/B", {n, n}), mf.f64("morse/e0", {n}));
}

inline const KindRegistrar morse_kind{"morse", local_kind(read_morse_model)};

}  // namespace clusterforce::test_kind

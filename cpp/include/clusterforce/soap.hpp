// SOAP power spectrum with the GTO radial basis and real spherical harmonics, defined as
// dscribe's SOAP (rbf="gto", average="off", compression "off", periodic or not), with analytic
// gradients returned per (centre, neighbour) pair.  dscribe's "poly" weighting (and w0) is
// available as an option: it makes the descriptor smooth at the cutoff.
//
// Conventions (units: Angstrom):
//   density of species s around a centre: rho_s(r) = sum_j exp(-|r - r_j|^2 / (2 sigma^2)),
//   the centre atom itself included (at r = 0);
//   radial basis g_nl(r) = sum_k beta_lnk r^l exp(-alpha_lk r^2), alpha from decay to 1e-3 at
//   a_k = linspace(1, r_cut, n_max), beta = S^-1/2 (Loewdin) of the GTO overlap S;
//   c_snlm = integral of g_nl(r) Y_lm(r_hat) rho_s(r) d^3r (analytic, unbounded domain);
//   p = pi sqrt(8/(2l+1)) sum_m c_s1nlm c_s2n'lm for s1 <= s2 (species sorted by atomic number),
//   n <= n' when s1 == s2; features ordered (s1, s2) blocks, then l, then (n, n').
//   Atoms count as neighbours up to cutoff() = r_cut + sigma sqrt(-2 ln 1e-3), as in dscribe.
//
// Entry points:
//   SoapGTO::compute_center   one centre with an explicit neighbour list (LAMMPS style): values
//                             and gradients per neighbour;
//   SoapGTO::contract_center  the same centre's gradients contracted with a weight vector
//                             (w . dp/dr, e.g. forces from dE/dp) without forming dp/dr;
//   SoapStructure             a whole structure (cluster or periodic) built on top of them.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "neighbors.hpp"
#include "parallel.hpp"

namespace clusterforce {

namespace soap_detail {

constexpr double kPi = 3.14159265358979323846;
// dscribe's decay threshold of the GTOs and of the density Gaussians at the cutoff.
constexpr double kDecayThreshold = 1e-3;
constexpr int kMaxL = 20;

// Eigen-decomposition of a symmetric matrix (row-major n x n) by cyclic Jacobi rotations:
// the basis matrices are tiny (n_max x n_max) and Jacobi keeps eigenvalues of a positive
// definite matrix to high relative accuracy, which the Loewdin S^-1/2 needs.
inline void symmetric_eigen(std::vector<double> a, int n, std::vector<double>& values, std::vector<double>& vectors) {
  vectors.assign(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) vectors[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (int i = 0; i < n; ++i) {
      diag += a[i * n + i] * a[i * n + i];
      for (int j = i + 1; j < n; ++j) off += a[i * n + j] * a[i * n + j];
    }
    if (off <= 1e-34 * diag) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0.0) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0);
        const double s = t * c;
        for (int k = 0; k < n; ++k) {
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double vkp = vectors[k * n + p], vkq = vectors[k * n + q];
          vectors[k * n + p] = c * vkp - s * vkq;
          vectors[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  values.resize(n);
  for (int i = 0; i < n; ++i) values[i] = a[i * n + i];
}

// Real solid harmonics r^l Y_lm(r_hat) (orthonormal Y, index l*l + l + m) up to l_max and,
// if grad != nullptr, their Cartesian gradients (grad[d * n_lm + lm]).  Built as
// N_lm Q_l^|m|(z, r^2) {Re, Im}(x + i y)^|m| with the Legendre recurrence for Q.
class SolidHarmonics {
 public:
  explicit SolidHarmonics(int l_max) : l_max_(l_max), n_lm_((l_max + 1) * (l_max + 1)) {
    norm_.resize((l_max + 1) * (l_max + 1));
    for (int l = 0; l <= l_max; ++l) {
      for (int m = 0; m <= l; ++m) {
        double ratio = 1.0;  // (l-m)! / (l+m)!
        for (int k = l - m + 1; k <= l + m; ++k) ratio /= k;
        double nlm = std::sqrt((2.0 * l + 1.0) / (4.0 * kPi) * ratio);
        if (m > 0) nlm *= std::sqrt(2.0);
        norm_[l * (l_max + 1) + m] = nlm;
      }
    }
    const std::size_t nq = static_cast<std::size_t>(l_max + 1) * (l_max + 1);
    // Recurrence (l-m) Q_l^m = (2l-1) z Q_{l-1}^m - (l+m-1) r^2 Q_{l-2}^m, divided through.
    ca_.assign(nq, 0.0);
    cb_.assign(nq, 0.0);
    for (int m = 0; m <= l_max; ++m)
      for (int l = m + 2; l <= l_max; ++l) {
        ca_[l * (l_max + 1) + m] = (2.0 * l - 1.0) / (l - m);
        cb_[l * (l_max + 1) + m] = (l + m - 1.0) / (l - m);
      }
    q_.resize(nq);
    qz_.resize(nq);
    qr_.resize(nq);
    re_.resize(l_max + 1);
    im_.resize(l_max + 1);
  }

  int n_lm() const { return n_lm_; }

  void evaluate(double x, double y, double z, double* values, double* grad) {
    const int L = l_max_, W = l_max_ + 1;
    const double r2 = x * x + y * y + z * z;
    re_[0] = 1.0;
    im_[0] = 0.0;
    for (int m = 1; m <= L; ++m) {
      re_[m] = x * re_[m - 1] - y * im_[m - 1];
      im_[m] = x * im_[m - 1] + y * re_[m - 1];
    }
    double dfact = 1.0;  // (2m-1)!!
    for (int m = 0; m <= L; ++m) {
      if (m > 0) dfact *= (2.0 * m - 1.0);
      q_[m * W + m] = dfact;
      if (m + 1 <= L) q_[(m + 1) * W + m] = (2.0 * m + 1.0) * z * dfact;
      for (int l = m + 2; l <= L; ++l)
        q_[l * W + m] = ca_[l * W + m] * z * q_[(l - 1) * W + m] - cb_[l * W + m] * r2 * q_[(l - 2) * W + m];
      if (grad == nullptr) continue;
      // Partial derivatives of Q with respect to z and to r^2, by the same recurrence.
      qz_[m * W + m] = 0.0;
      qr_[m * W + m] = 0.0;
      if (m + 1 <= L) {
        qz_[(m + 1) * W + m] = (2.0 * m + 1.0) * dfact;
        qr_[(m + 1) * W + m] = 0.0;
      }
      for (int l = m + 2; l <= L; ++l) {
        const double a = ca_[l * W + m], b = cb_[l * W + m];
        qz_[l * W + m] = a * (q_[(l - 1) * W + m] + z * qz_[(l - 1) * W + m]) - b * r2 * qz_[(l - 2) * W + m];
        qr_[l * W + m] = a * z * qr_[(l - 1) * W + m] - b * (q_[(l - 2) * W + m] + r2 * qr_[(l - 2) * W + m]);
      }
    }
    for (int l = 0; l <= L; ++l) {
      const int base = l * l + l;
      for (int m = 0; m <= l; ++m) {
        const double nq = norm_[l * W + m] * q_[l * W + m];
        values[base + m] = nq * re_[m];
        if (m > 0) values[base - m] = nq * im_[m];
        if (grad == nullptr) continue;
        const double nqr2 = 2.0 * norm_[l * W + m] * qr_[l * W + m];
        const double nqz = norm_[l * W + m] * (qz_[l * W + m] + 2.0 * z * qr_[l * W + m]);
        // d(x+iy)^m/dx = m (x+iy)^(m-1), d/dy = i m (x+iy)^(m-1)
        const double dre_x = m > 0 ? m * re_[m - 1] : 0.0;
        const double dim_x = m > 0 ? m * im_[m - 1] : 0.0;
        grad[base + m] = nqr2 * x * re_[m] + nq * dre_x;
        grad[n_lm_ + base + m] = nqr2 * y * re_[m] - nq * dim_x;
        grad[2 * n_lm_ + base + m] = nqz * re_[m];
        if (m > 0) {
          grad[base - m] = nqr2 * x * im_[m] + nq * dim_x;
          grad[n_lm_ + base - m] = nqr2 * y * im_[m] + nq * dre_x;
          grad[2 * n_lm_ + base - m] = nqz * im_[m];
        }
      }
    }
  }

 private:
  int l_max_, n_lm_;
  std::vector<double> norm_, ca_, cb_, q_, qz_, qr_, re_, im_;
};

}  // namespace soap_detail

// Optional radial weighting of the density, as dscribe's weighting dict:
//   poly: w(r) = c (1 + 2 (r/r0)^3 - 3 (r/r0)^2)^m for r <= r0, 0 beyond (Caro 2019); it goes
//         to zero with zero slope at r0, so the descriptor becomes smooth at the cutoff.
//   w0:   weight of an atom exactly at the centre (the centre atom itself), overriding w.
//   cosine transition (GAP's cutoff_transition_width): w(r) = 1 up to r_cut - width, then
//         (1 + cos(pi (r - r_cut + width) / width)) / 2 down to 0 at r_cut, where the neighbour
//         list ends; energy and forces are then continuous when an atom crosses the cutoff.
// Default: no weighting (w = 1), dscribe's default.
struct SoapWeighting {
  bool poly = false;
  double r0 = 0.0, c = 1.0, m = 1.0;
  bool has_w0 = false;
  double w0 = 1.0;
  double cosine_width = 0.0;  // Angstrom; 0 = no transition
};

// SOAP descriptor with the GTO radial basis (see the file comment for the definition).
class SoapGTO {
 public:
  // Per-thread scratch space for compute_center; grows on demand, never shrinks.
  struct Workspace {
    std::vector<double> coeff;       // (n_species, n_lm, n_max)
    std::vector<double> raw;         // (n_species, n_lm, n_max) in the primitive GTO basis
    std::vector<double> radial;      // per neighbour: G and dG/dr^2, (2, l_max+1, n_max)
    std::vector<double> harmonics;   // per neighbour: Y and grad Y, (4, n_lm)
    std::vector<double> ab;          // (2, 3, n_lm) for one neighbour
    std::vector<double> uv;          // (n_species, 2, 3, l_max+1, n_max) for one neighbour
    std::vector<double> contracted;  // (4, l_max+1, n_max) for one neighbour and species
    std::vector<double> exps;        // (l_max+1, n_max)
    std::vector<char> touched;       // neighbours whose gradient row has been written
    std::vector<double> h;           // (n_species, n_lm, n_max): weights pulled back to c
    std::vector<double> weights;     // per neighbour: w and (dw/dr)/r
    std::vector<double> values;      // (n_features,) power spectrum of the current centre
    std::vector<int> inside;         // neighbours within the cutoff
    soap_detail::SolidHarmonics ylm{0};
  };

  // species: atomic numbers (any order, duplicates allowed); stored sorted and unique.
  SoapGTO(double r_cut, int n_max, int l_max, double sigma, std::vector<int> species, SoapWeighting weighting = {})
      : r_cut_(r_cut), n_max_(n_max), l_max_(l_max), sigma_(sigma), weighting_(weighting) {
    using soap_detail::kPi;
    if (!(sigma > 0.0) || !std::isfinite(sigma))
      throw std::invalid_argument("SOAP sigma must be > 0 Angstrom, got " + std::to_string(sigma));
    if (n_max < 1) throw std::invalid_argument("SOAP n_max must be >= 1, got " + std::to_string(n_max));
    if (l_max < 0 || l_max > soap_detail::kMaxL)
      throw std::invalid_argument("SOAP l_max must be in [0, " + std::to_string(soap_detail::kMaxL) + "], got " +
                                  std::to_string(l_max));
    if (!(r_cut > 1.0) || !std::isfinite(r_cut))
      throw std::invalid_argument("SOAP r_cut must be > 1 Angstrom for the GTO radial basis, got " +
                                  std::to_string(r_cut));
    if (weighting.poly && !(weighting.r0 > 0.0 && weighting.c >= 0.0 && weighting.m >= 0.0))
      throw std::invalid_argument(
          "SOAP poly weighting needs r0 > 0, c >= 0, m >= 0, got r0=" + std::to_string(weighting.r0) +
          ", c=" + std::to_string(weighting.c) + ", m=" + std::to_string(weighting.m));
    if (weighting.has_w0 && !(weighting.w0 >= 0.0))
      throw std::invalid_argument("SOAP weighting w0 must be >= 0, got " + std::to_string(weighting.w0));
    if (species.empty()) throw std::invalid_argument("SOAP species list is empty");
    for (int z : species)
      if (z < 1) throw std::invalid_argument("SOAP species must be atomic numbers >= 1, got " + std::to_string(z));
    std::sort(species.begin(), species.end());
    species.erase(std::unique(species.begin(), species.end()), species.end());
    species_ = std::move(species);
    const int S = n_species();
    n_lm_ = (l_max + 1) * (l_max + 1);
    if (weighting.cosine_width < 0.0 || !(weighting.cosine_width < r_cut) ||
        (weighting.cosine_width > 0.0 && weighting.poly))
      throw std::invalid_argument(
          "SOAP cutoff transition width must be in [0, r_cut) Angstrom and not combined with poly "
          "weighting, got " +
          std::to_string(weighting.cosine_width));
    // With a transition every neighbour beyond r_cut has weight 0, so the list can stop there.
    cutoff_ =
        weighting.cosine_width > 0.0 ? r_cut : r_cut + sigma * std::sqrt(-2.0 * std::log(soap_detail::kDecayThreshold));

    build_basis();
    const double eta = 1.0 / (2.0 * sigma * sigma);
    const double pi32 = std::pow(kPi, 1.5);
    // Analytic integral of r^l e^{-alpha r^2} Y_lm against a Gaussian at R:
    // pi^{3/2} eta^l / (eta+alpha)^{l+3/2} e^{-alpha eta R^2/(eta+alpha)} R^l Y_lm(R_hat).
    exponent_.resize((l_max + 1) * n_max);
    weight_.resize(static_cast<std::size_t>(l_max + 1) * n_max * n_max);
    for (int l = 0; l <= l_max; ++l) {
      for (int k = 0; k < n_max; ++k) {
        const double alpha = alphas_[l * n_max + k];
        exponent_[l * n_max + k] = -alpha * eta / (eta + alpha);
        const double pre = pi32 * std::pow(eta, l) / std::pow(eta + alpha, l + 1.5);
        for (int n = 0; n < n_max; ++n)
          weight_[(l * n_max + n) * n_max + k] = betas_[(l * n_max + n) * n_max + k] * pre;
      }
    }
    // Transposed copies (l, k, n) so that the basis change runs over contiguous n.
    weight_t_.resize(weight_.size());
    dweight_t_.resize(weight_.size());
    for (int l = 0; l <= l_max; ++l)
      for (int k = 0; k < n_max; ++k)
        for (int n = 0; n < n_max; ++n) {
          const double w = weight_[(l * n_max + n) * n_max + k];
          weight_t_[(l * n_max + k) * n_max + n] = w;
          dweight_t_[(l * n_max + k) * n_max + n] = w * exponent_[l * n_max + k];
        }
    prefactor_.resize(l_max + 1);
    for (int l = 0; l <= l_max; ++l) prefactor_[l] = kPi * std::sqrt(8.0 / (2.0 * l + 1.0));

    // Feature layout: blocks (s1 <= s2), then l, then (n, n') (n <= n' inside s1 == s2).
    block_offset_.assign(static_cast<std::size_t>(S) * S, 0);
    std::size_t offset = 0;
    for (int s1 = 0; s1 < S; ++s1) {
      for (int s2 = s1; s2 < S; ++s2) {
        block_offset_[s1 * S + s2] = offset;
        offset += static_cast<std::size_t>(l_max + 1) * block_size(s1 == s2);
      }
    }
    n_features_ = offset;
  }

  double r_cut() const { return r_cut_; }
  int n_max() const { return n_max_; }
  int l_max() const { return l_max_; }
  double sigma() const { return sigma_; }
  // Neighbour cutoff: r_cut with a cosine transition, else r_cut plus the distance at which a
  // density Gaussian decays to 1e-3 (dscribe).
  double cutoff() const { return cutoff_; }
  const std::vector<int>& species() const { return species_; }
  int n_species() const { return static_cast<int>(species_.size()); }
  std::size_t n_features() const { return n_features_; }
  // alphas (l_max+1, n_max) in 1/Angstrom^2 and betas (l_max+1, n_max, n_max) of the basis.
  const std::vector<double>& alphas() const { return alphas_; }
  const std::vector<double>& betas() const { return betas_; }
  const SoapWeighting& weighting() const { return weighting_; }

  // Density weight w(r) and (dw/dr)/r (so that grad w = that * r_vec) at distance r.
  void weight(double r, double& w, double& dw_over_r) const {
    dw_over_r = 0.0;
    if (r == 0.0 && weighting_.has_w0) {
      w = weighting_.w0;
    } else if (weighting_.cosine_width > 0.0) {
      const double start = r_cut_ - weighting_.cosine_width;
      if (r <= start) {
        w = 1.0;
      } else if (r >= r_cut_) {
        w = 0.0;
      } else {
        const double phase = soap_detail::kPi * (r - start) / weighting_.cosine_width;
        w = 0.5 * (1.0 + std::cos(phase));
        dw_over_r = -0.5 * soap_detail::kPi / weighting_.cosine_width * std::sin(phase) / r;
      }
    } else if (!weighting_.poly) {
      w = 1.0;
    } else if (r >= weighting_.r0) {
      w = 0.0;
    } else {
      const double x = r / weighting_.r0, base = 1.0 + 2.0 * x * x * x - 3.0 * x * x;
      w = weighting_.c * std::pow(base, weighting_.m);
      if (r > 0.0 && weighting_.m != 0.0)
        dw_over_r = weighting_.c * weighting_.m * std::pow(base, weighting_.m - 1.0) * 6.0 * (x - 1.0) /
                    (weighting_.r0 * weighting_.r0);
    }
  }

  // Index of an atomic number in species(), or -1 if it is not one of them.
  int species_index(int atomic_number) const {
    auto it = std::lower_bound(species_.begin(), species_.end(), atomic_number);
    if (it == species_.end() || *it != atomic_number) return -1;
    return static_cast<int>(it - species_.begin());
  }

  Workspace make_workspace() const {
    Workspace ws;
    ws.ylm = soap_detail::SolidHarmonics(l_max_);
    return ws;
  }

  // Core entry point: SOAP of one centre from an explicit neighbour list.
  //   center_species     species index (0..n_species-1) of the centre atom
  //   rel                (n_neighbors, 3) neighbour position minus centre position, Angstrom;
  //                      the centre itself must NOT be listed (it is added at r = 0);
  //                      neighbours beyond cutoff() are ignored (zero gradient)
  //   neighbor_species   (n_neighbors,) species indices
  //   values             (n_features,) output, overwritten
  //   gradients          nullptr, or (n_neighbors + 1, 3, n_features) output, overwritten:
  //                      row 0 = d p / d r_centre (= -sum of the others), row 1 + j =
  //                      d p / d r_j for neighbour j, in 1/Angstrom units of p
  // The workspace must come from make_workspace() of this object; use one per thread.
  void compute_center(int center_species, std::size_t n_neighbors, const double* rel, const int* neighbor_species,
                      double* values, double* gradients, Workspace& ws) const {
    const bool want_grad = gradients != nullptr;
    expand(center_species, n_neighbors, rel, neighbor_species, want_grad, ws);
    const int S = n_species(), N = n_max_, L1 = l_max_ + 1, NLM = n_lm_;
    const std::size_t radial_stride = 2 * static_cast<std::size_t>(L1) * N;
    const std::size_t harm_stride = 4 * static_cast<std::size_t>(NLM);
    const std::size_t n_in = ws.inside.size();
    power_spectrum(ws.coeff.data(), values);
    if (!want_grad) return;

    const std::size_t F = n_features_;
    double* center_row = gradients;
    std::memset(center_row, 0, 3 * F * sizeof(double));
    grow(ws.uv, static_cast<std::size_t>(S) * 6 * L1 * N);
    grow(ws.contracted, 4 * static_cast<std::size_t>(L1) * N);
    std::vector<char>& touched = ws.touched;
    touched.assign(n_neighbors, 0);
    for (std::size_t e = 0; e < n_in; ++e) {
      const int j = ws.inside[e];
      touched[j] = 1;
      // d (w c_sj) / d r_j,d = a_d dG + b_d G (see derivative_factors), so contracting it
      // with c_s over m needs u_d = sum_m a_d c_s = 2 r_d w U and
      // v_d = sum_m b_d c_s = w V_d + (dw/dr / r) r_d U, with U = sum_m Y c_s and
      // V_d = sum_m dY/dr_d c_s.
      const double* ylm = ws.harmonics.data() + e * harm_stride;
      const double* r = rel + 3 * j;
      const double w = ws.weights[2 * e], dw = ws.weights[2 * e + 1];
      for (int s = 0; s < S; ++s) {
        const double* c = ws.coeff.data() + static_cast<std::size_t>(s) * NLM * N;
        double* uv = ws.uv.data() + static_cast<std::size_t>(s) * 6 * L1 * N;
        double* big_u = ws.contracted.data();  // (4, l_max+1, n_max): U, V_x, V_y, V_z
        std::fill(big_u, big_u + 4 * L1 * N, 0.0);
        for (int q = 0; q < 4; ++q) {
          const double* yq = ylm + q * NLM;
          for (int l = 0; l < L1; ++l) {
            double* out = big_u + (q * L1 + l) * N;
            for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
              const double y = yq[lm];
              const double* cl = c + lm * N;
              for (int n = 0; n < N; ++n) out[n] += y * cl[n];
            }
          }
        }
        for (int d = 0; d < 3; ++d) {
          const double au = 2.0 * r[d] * w, bu = dw * r[d];
          double* u = uv + d * L1 * N;
          double* v = uv + (3 + d) * L1 * N;
          const double* vd = big_u + (d + 1) * L1 * N;
          for (int i = 0; i < L1 * N; ++i) {
            u[i] = au * big_u[i];
            v[i] = w * vd[i] + bu * big_u[i];
          }
        }
      }
      const double* rad = ws.radial.data() + e * radial_stride;
      gradient_row(rad, rad + L1 * N, ws.uv.data(), neighbor_species[j], gradients + (j + 1) * 3 * F, center_row);
    }
    for (std::size_t j = 0; j < n_neighbors; ++j)
      if (!touched[j]) std::memset(gradients + (j + 1) * 3 * F, 0, 3 * F * sizeof(double));
  }

  // Contracted gradients of one centre (a vector-Jacobian product, e.g. forces from dE/dp)
  // without forming d p / d r: out (n_neighbors + 1, 3) = sum_f weights_f d p_f / d r for
  // the centre (row 0) and each neighbour (row 1 + j); values (n_features,) or nullptr.
  // Arguments otherwise as compute_center.
  void contract_center(int center_species, std::size_t n_neighbors, const double* rel, const int* neighbor_species,
                       const double* weights, double* values, double* out, Workspace& ws) const {
    contract_center_with(
        center_species, n_neighbors, rel, neighbor_species, [weights](const double*) { return weights; }, values, out,
        ws);
  }

  // As contract_center, for weights that depend on the centre's own power spectrum (dE/dp of a
  // kernel model): make_weights(values) returns the n_features weights once the spectrum is
  // known, so the expansion runs once and no (n_neighbors + 1, 3, n_features) array is formed.
  template <class MakeWeights>
  void contract_center_with(int center_species, std::size_t n_neighbors, const double* rel, const int* neighbor_species,
                            MakeWeights&& make_weights, double* values, double* out, Workspace& ws) const {
    expand(center_species, n_neighbors, rel, neighbor_species, true, ws);
    grow(ws.values, n_features_);
    power_spectrum(ws.coeff.data(), ws.values.data());
    if (values != nullptr) std::copy(ws.values.begin(), ws.values.begin() + n_features_, values);
    const double* weights = make_weights(static_cast<const double*>(ws.values.data()));
    const int S = n_species(), N = n_max_, L1 = l_max_ + 1, NLM = n_lm_;
    const std::size_t cs = static_cast<std::size_t>(NLM) * N;
    const std::size_t radial_stride = 2 * static_cast<std::size_t>(L1) * N;
    // h[s][lm][n] = d (sum_f weights_f p_f) / d c[s][lm][n]
    grow(ws.h, S * cs);
    double* h = ws.h.data();
    std::fill(h, h + S * cs, 0.0);
    const double* c = ws.coeff.data();
    for (int s1 = 0; s1 < S; ++s1)
      for (int s2 = s1; s2 < S; ++s2) {
        const double* wf = weights + block_offset_[s1 * S + s2];
        for (int l = 0; l < L1; ++l)
          for (int n = 0; n < N; ++n)
            for (int n2 = s1 == s2 ? n : 0; n2 < N; ++n2) {
              const double pw = prefactor_[l] * *wf++;
              for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
                h[s1 * cs + lm * N + n] += pw * c[s2 * cs + lm * N + n2];
                h[s2 * cs + lm * N + n2] += pw * c[s1 * cs + lm * N + n];
              }
            }
      }
    std::fill(out, out + 3 * (n_neighbors + 1), 0.0);
    for (std::size_t e = 0; e < ws.inside.size(); ++e) {
      const int j = ws.inside[e];
      derivative_factors(e, rel + 3 * j, ws);
      const double* a = ws.ab.data();
      const double* b = a + 3 * NLM;
      const double* g = ws.radial.data() + e * radial_stride;
      const double* dg = g + L1 * N;
      const double* hs = h + neighbor_species[j] * cs;
      for (int l = 0; l < L1; ++l)
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
          double hdg = 0.0, hg = 0.0;
          for (int n = 0; n < N; ++n) {
            hdg += hs[lm * N + n] * dg[l * N + n];
            hg += hs[lm * N + n] * g[l * N + n];
          }
          for (int d = 0; d < 3; ++d) out[3 * (j + 1) + d] += a[d * NLM + lm] * hdg + b[d * NLM + lm] * hg;
        }
      for (int d = 0; d < 3; ++d) out[d] -= out[3 * (j + 1) + d];
    }
  }

 private:
  // d (w c_{s,n,lm}) / d r_d of neighbour entry e is a_{d,lm} dG_nl/dr^2 + b_{d,lm} G_nl with
  // a = 2 r_d w Y_lm and b = w dY_lm/dr_d + Y_lm dw/dr_d: rank two in (lm, n).  Fills
  // ws.ab = (a, b), each (3, n_lm).
  void derivative_factors(std::size_t e, const double* r, Workspace& ws) const {
    const int NLM = n_lm_;
    grow(ws.ab, 6 * static_cast<std::size_t>(NLM));
    const double* ylm = ws.harmonics.data() + e * 4 * static_cast<std::size_t>(NLM);
    const double w = ws.weights[2 * e], dw = ws.weights[2 * e + 1];
    double* a = ws.ab.data();
    double* b = a + 3 * NLM;
    for (int d = 0; d < 3; ++d)
      for (int lm = 0; lm < NLM; ++lm) {
        a[d * NLM + lm] = 2.0 * r[d] * w * ylm[lm];
        b[d * NLM + lm] = w * ylm[(d + 1) * NLM + lm] + dw * r[d] * ylm[lm];
      }
  }

  static void grow(std::vector<double>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
  }

  std::size_t block_size(bool diagonal) const {
    const std::size_t n = static_cast<std::size_t>(n_max_);
    return diagonal ? n * (n + 1) / 2 : n * n;
  }

  // alpha_lk: GTO k decays to 1e-3 at a_k = linspace(1, r_cut, n_max) (r^l included);
  // beta_l = S_l^{-1/2}, S_l,kk' = Gamma(l+3/2) / (2 (alpha_lk + alpha_lk')^{l+3/2}).
  void build_basis() {
    const int N = n_max_;
    alphas_.resize((l_max_ + 1) * N);
    betas_.resize(static_cast<std::size_t>(l_max_ + 1) * N * N);
    std::vector<double> a(N), overlap(static_cast<std::size_t>(N) * N), values, vectors;
    for (int k = 0; k < N; ++k) a[k] = N == 1 ? 1.0 : 1.0 + (r_cut_ - 1.0) * k / (N - 1);
    for (int l = 0; l <= l_max_; ++l) {
      double* alpha = alphas_.data() + l * N;
      for (int k = 0; k < N; ++k)
        alpha[k] = -std::log(soap_detail::kDecayThreshold / std::pow(a[k], l)) / (a[k] * a[k]);
      const double gam = std::tgamma(l + 1.5);
      for (int i = 0; i < N; ++i)
        for (int k = 0; k < N; ++k) overlap[i * N + k] = 0.5 * gam * std::pow(alpha[i] + alpha[k], -l - 1.5);
      soap_detail::symmetric_eigen(overlap, N, values, vectors);
      const double largest = *std::max_element(values.begin(), values.end());
      for (double v : values)
        if (!(v > 1e-15 * largest))
          throw std::invalid_argument("SOAP GTO radial basis cannot be orthonormalised (overlap matrix of l=" +
                                      std::to_string(l) + " is singular for r_cut=" + std::to_string(r_cut_) +
                                      ", n_max=" + std::to_string(N) + "); lower n_max or raise r_cut");
      double* beta = betas_.data() + static_cast<std::size_t>(l) * N * N;
      for (int i = 0; i < N; ++i)
        for (int k = 0; k < N; ++k) {
          double sum = 0.0;
          for (int e = 0; e < N; ++e) sum += vectors[i * N + e] * vectors[k * N + e] / std::sqrt(values[e]);
          beta[i * N + k] = sum;
        }
    }
  }

  // G_nl and dG_nl/d(r^2), both (l_max+1, n_max), from the primitive exponentials
  // exps (l_max+1, n_max) at one distance.
  void radial_functions(const double* exps, double* g, double* dg) const {
    const int N = n_max_, L1 = l_max_ + 1;
    std::fill(g, g + L1 * N, 0.0);
    std::fill(dg, dg + L1 * N, 0.0);
    for (int l = 0; l < L1; ++l) {
      double* gl = g + l * N;
      double* dgl = dg + l * N;
      for (int k = 0; k < N; ++k) {
        const double ek = exps[l * N + k];
        const double* wt = weight_t_.data() + (static_cast<std::size_t>(l) * N + k) * N;
        const double* dwt = dweight_t_.data() + (static_cast<std::size_t>(l) * N + k) * N;
        for (int n = 0; n < N; ++n) {
          gl[n] += wt[n] * ek;
          dgl[n] += dwt[n] * ek;
        }
      }
    }
  }

  // coeff (n_species, n_lm, n_max) -> power spectrum (n_features,).
  void power_spectrum(const double* coeff, double* out) const {
    const int S = n_species(), N = n_max_;
    const std::size_t cs = static_cast<std::size_t>(n_lm_) * N;
    for (int s1 = 0; s1 < S; ++s1) {
      for (int s2 = s1; s2 < S; ++s2) {
        const bool diag = s1 == s2;
        double* p = out + block_offset_[s1 * S + s2];
        for (int l = 0; l <= l_max_; ++l) {
          for (int n = 0; n < N; ++n) {
            for (int n2 = diag ? n : 0; n2 < N; ++n2) {
              double sum = 0.0;
              for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm)
                sum += coeff[s1 * cs + lm * N + n] * coeff[s2 * cs + lm * N + n2];
              *p++ = prefactor_[l] * sum;
            }
          }
        }
      }
    }
  }

  // Validates the species and fills the workspace: neighbours within the cutoff, their
  // radial functions, harmonics and weights (with derivatives if want_grad; the centre is
  // the last entry, at r = 0) and the expansion coefficients (n_species, n_lm, n_max).
  void expand(int center_species, std::size_t n_neighbors, const double* rel, const int* neighbor_species,
              bool want_grad, Workspace& ws) const {
    const int S = n_species();
    if (center_species < 0 || center_species >= S)
      throw std::out_of_range("SOAP centre species index " + std::to_string(center_species) + " outside [0, " +
                              std::to_string(S) + ")");
    for (std::size_t j = 0; j < n_neighbors; ++j)
      if (neighbor_species[j] < 0 || neighbor_species[j] >= S)
        throw std::out_of_range("SOAP neighbour " + std::to_string(j) + " has species index " +
                                std::to_string(neighbor_species[j]) + " outside [0, " + std::to_string(S) + ")");
    const int N = n_max_, L1 = l_max_ + 1, NLM = n_lm_;
    const std::size_t radial_stride = 2 * static_cast<std::size_t>(L1) * N;
    const std::size_t harm_stride = 4 * static_cast<std::size_t>(NLM);

    ws.inside.clear();
    const double cut2 = cutoff_ * cutoff_;
    for (std::size_t j = 0; j < n_neighbors; ++j) {
      const double* d = rel + 3 * j;
      if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= cut2) ws.inside.push_back(static_cast<int>(j));
    }
    const std::size_t n_in = ws.inside.size();
    const std::size_t cs = static_cast<std::size_t>(NLM) * N;
    grow(ws.coeff, S * cs);
    grow(ws.raw, S * cs);
    grow(ws.radial, (n_in + 1) * radial_stride);
    grow(ws.harmonics, (n_in + 1) * harm_stride);
    grow(ws.exps, static_cast<std::size_t>(L1) * N);
    grow(ws.weights, 2 * (n_in + 1));
    std::fill(ws.raw.begin(), ws.raw.begin() + S * cs, 0.0);

    // Coefficients in the primitive GTO basis, raw[s][lm][k] = sum_j w Y_lm e^{-a_lk r_j^2}
    // (the centre atom is entry n_in, at r = 0), orthonormalised once per centre below.
    for (std::size_t e = 0; e <= n_in; ++e) {
      double x = 0.0, y = 0.0, z = 0.0;
      int s = center_species;
      if (e < n_in) {
        const int j = ws.inside[e];
        x = rel[3 * j];
        y = rel[3 * j + 1];
        z = rel[3 * j + 2];
        s = neighbor_species[j];
      }
      double* ylm = ws.harmonics.data() + e * harm_stride;
      const double r2 = x * x + y * y + z * z;
      double* ex = ws.exps.data();
      for (int i = 0; i < L1 * N; ++i) ex[i] = std::exp(exponent_[i] * r2);
      if (want_grad) {
        double* rad = ws.radial.data() + e * radial_stride;
        radial_functions(ex, rad, rad + L1 * N);
      }
      ws.ylm.evaluate(x, y, z, ylm, want_grad ? ylm + NLM : nullptr);
      double& w = ws.weights[2 * e];
      weight(std::sqrt(r2), w, ws.weights[2 * e + 1]);
      double* raw = ws.raw.data() + s * cs;
      for (int l = 0; l < L1; ++l) {
        const double* el = ex + l * N;
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
          const double y_lm = w * ylm[lm];
          double* rl = raw + lm * N;
          for (int k = 0; k < N; ++k) rl[k] += el[k] * y_lm;
        }
      }
    }
    for (int s = 0; s < S; ++s)
      for (int l = 0; l < L1; ++l)
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
          const double* rl = ws.raw.data() + s * cs + lm * N;
          double* cl = ws.coeff.data() + s * cs + lm * N;
          std::fill(cl, cl + N, 0.0);
          for (int k = 0; k < N; ++k) {
            const double* wt = weight_t_.data() + (static_cast<std::size_t>(l) * N + k) * N;
            const double rk = rl[k];
            for (int n = 0; n < N; ++n) cl[n] += wt[n] * rk;
          }
        }
  }

  // Gradient of the power spectrum with respect to one neighbour of species sj, from its
  // radial functions g, dg (l_max+1, n_max) and uv (n_species, 2, 3, l_max+1, n_max) (see
  // compute_center): writes the neighbour's row (3, n_features), zero outside the blocks
  // that involve sj, and subtracts it from the centre's row.
  void gradient_row(const double* g, const double* dg, const double* uv_all, int sj, double* row,
                    double* center_row) const {
    const int S = n_species(), N = n_max_, L1 = l_max_ + 1;
    const std::size_t F = n_features_;
    for (int d = 0; d < 3; ++d) {
      double* out = row + d * F;
      double* cen = center_row + d * F;
      for (int s1 = 0; s1 < S; ++s1)
        for (int s2 = s1; s2 < S; ++s2) {
          if (s1 != sj && s2 != sj) {
            std::fill(out + block_offset_[s1 * S + s2], out + block_offset_[s1 * S + s2] + L1 * block_size(s1 == s2),
                      0.0);
            continue;
          }
          const int s = s1 == sj ? s2 : s1;  // the other species of the pair
          const double* uv = uv_all + static_cast<std::size_t>(s) * 6 * L1 * N;
          std::size_t f = block_offset_[s1 * S + s2];
          for (int l = 0; l < L1; ++l, f += block_size(s1 == s2)) {
            const double pre = prefactor_[l];
            const double* gl = g + l * N;
            const double* dgl = dg + l * N;
            const double* u = uv + (d * L1 + l) * N;
            const double* v = uv + ((3 + d) * L1 + l) * N;
            if (s1 == s2)
              block_row_symmetric(N, pre, dgl, gl, u, v, out + f, cen + f);
            else if (s1 == sj)
              block_row(N, pre, dgl, gl, u, v, out + f, cen + f);
            else
              block_row(N, pre, u, v, dgl, gl, out + f, cen + f);
          }
        }
    }
  }

  // out[n][n'] = pre (p[n] x[n'] + q[n] y[n']) for all n, n' (row-major), and cen -= out.
  static void block_row(int N, double pre, const double* __restrict p, const double* __restrict q,
                        const double* __restrict x, const double* __restrict y, double* __restrict out,
                        double* __restrict cen) {
    for (int n = 0; n < N; ++n) {
      const double pp = pre * p[n], pq = pre * q[n];
      double* __restrict o = out + n * N;
      double* __restrict c = cen + n * N;
      for (int n2 = 0; n2 < N; ++n2) {
        const double val = pp * x[n2] + pq * y[n2];
        o[n2] = val;
        c[n2] -= val;
      }
    }
  }

  // The symmetrised version for n <= n' (packed upper triangle):
  // out = pre (dg[n] u[n'] + g[n] v[n'] + dg[n'] u[n] + g[n'] v[n]), and cen -= out.
  static void block_row_symmetric(int N, double pre, const double* __restrict dg, const double* __restrict g,
                                  const double* __restrict u, const double* __restrict v, double* __restrict out,
                                  double* __restrict cen) {
    for (int n = 0; n < N; ++n) {
      const double a = pre * dg[n], b = pre * g[n], c = pre * u[n], e = pre * v[n];
      const int len = N - n;
      const double* __restrict un = u + n;
      const double* __restrict vn = v + n;
      const double* __restrict dgn = dg + n;
      const double* __restrict gn = g + n;
      for (int i = 0; i < len; ++i) {
        const double val = a * un[i] + b * vn[i] + c * dgn[i] + e * gn[i];
        out[i] = val;
        cen[i] -= val;
      }
      out += len;
      cen += len;
    }
  }

  double r_cut_;
  int n_max_, l_max_;
  double sigma_;
  SoapWeighting weighting_;
  std::vector<int> species_;
  int n_lm_ = 0;
  double cutoff_ = 0.0;
  std::vector<double> alphas_, betas_;
  std::vector<double> exponent_;   // (l_max+1, n_max): -alpha eta / (eta + alpha)
  std::vector<double> weight_;     // (l_max+1, n_max, n_max): beta pi^{3/2} eta^l/(eta+alpha)^{l+3/2}
  std::vector<double> weight_t_;   // (l_max+1, k, n): weight_ transposed
  std::vector<double> dweight_t_;  // (l_max+1, k, n): weight_t_ times exponent_
  std::vector<double> prefactor_;
  std::vector<std::size_t> block_offset_;
  std::size_t n_features_ = 0;
};

// SOAP of many centres, each given by its own neighbour list (ragged arrays): centre c has the
// neighbours offsets[c] .. offsets[c + 1] - 1 of rel (n_rel x 3, Angstrom, neighbour minus
// centre) and neighbor_species; species are indices into soap.species(). This is how dml model
// files store their reference atoms: a few neighbours per atom instead of its descriptor.
// out: n_centres x n_features, overwritten.
inline void compute_neighbourhoods(const SoapGTO& soap, std::size_t n_centres, const int* centre_species,
                                   const std::int64_t* offsets, std::size_t n_rel, const double* rel,
                                   const int* neighbor_species, double* out) {
  const int S = soap.n_species();
  if (n_centres > 0 && offsets[0] != 0) throw std::invalid_argument("neighbourhood offsets must start at 0");
  for (std::size_t c = 0; c < n_centres; ++c) {
    if (offsets[c + 1] < offsets[c] || offsets[c + 1] > static_cast<std::int64_t>(n_rel))
      throw std::invalid_argument("neighbourhood offsets must be non-decreasing and at most " + std::to_string(n_rel) +
                                  " (the number of neighbours); centre " + std::to_string(c) + " has " +
                                  std::to_string(offsets[c]) + ".." + std::to_string(offsets[c + 1]));
    if (centre_species[c] < 0 || centre_species[c] >= S)
      throw std::invalid_argument("species index " + std::to_string(centre_species[c]) + " of centre " +
                                  std::to_string(c) + " is out of range");
  }
  for (std::size_t k = 0; k < n_rel; ++k) {
    if (neighbor_species[k] < 0 || neighbor_species[k] >= S)
      throw std::invalid_argument("species index " + std::to_string(neighbor_species[k]) + " of neighbour " +
                                  std::to_string(k) + " is out of range");
    for (int d = 0; d < 3; ++d)
      if (!std::isfinite(rel[3 * k + d]))
        throw std::invalid_argument("neighbour " + std::to_string(k) + " has a non-finite position");
  }
  const std::size_t F = soap.n_features();
  parallel_for_with(
      static_cast<std::int64_t>(n_centres), [&] { return soap.make_workspace(); },
      [&](SoapGTO::Workspace& ws, std::int64_t c) {
        const std::int64_t begin = offsets[c], end = offsets[c + 1];
        soap.compute_center(centre_species[c], static_cast<std::size_t>(end - begin), rel + 3 * begin,
                            neighbor_species + begin, out + static_cast<std::size_t>(c) * F, nullptr, ws);
      },
      Schedule::dynamic_chunks(16));
}

// SOAP of a whole structure (a cluster, or periodic along the directions flagged in pbc).
// The constructor finds the neighbours (neighbors.hpp) and the gradient pairs; compute() and
// contract() fill caller-owned outputs, one OpenMP task per centre.  Gradient pairs of a
// centre: first the centre itself, then every other atom with an image within cutoff(), in
// increasing atom index (images of one atom, and of the centre, are summed into its row).
class SoapStructure {
 public:
  //   positions (n_atoms, 3) Angstrom; numbers (n_atoms,) atomic numbers, all in soap.species();
  //   centers (n_centers,) atom indices; cell (3, 3) rows = lattice vectors and pbc (3,), or
  //   nullptr for a cluster.  soap must outlive this object.
  SoapStructure(const SoapGTO& soap, const double* positions, std::size_t n_atoms, const int* numbers,
                const std::int64_t* centers, std::size_t n_centers, const double* cell = nullptr,
                const bool* pbc = nullptr)
      : soap_(soap), n_centers_(n_centers) {
    species_.resize(n_atoms);
    for (std::size_t a = 0; a < n_atoms; ++a) {
      species_[a] = soap.species_index(numbers[a]);
      if (species_[a] < 0) {
        std::string known;
        for (int z : soap.species()) known += (known.empty() ? "" : ", ") + std::to_string(z);
        throw std::invalid_argument("atom " + std::to_string(a) + " has atomic number " + std::to_string(numbers[a]) +
                                    ", which is not among the SOAP species [" + known + "]");
      }
    }
    centers_.assign(centers, centers + n_centers);
    for (std::size_t c = 0; c < n_centers; ++c)
      if (centers[c] < 0 || static_cast<std::size_t>(centers[c]) >= n_atoms)
        throw std::out_of_range("SOAP centre " + std::to_string(c) + " is atom index " + std::to_string(centers[c]) +
                                ", outside [0, " + std::to_string(n_atoms) + ")");
    std::array<bool, 3> periodic{false, false, false};
    if (cell != nullptr && pbc != nullptr) periodic = {pbc[0], pbc[1], pbc[2]};
    const bool any_periodic = periodic[0] || periodic[1] || periodic[2];
    list_ = neighbor_list(positions, n_atoms, soap.cutoff(), any_periodic ? cell : nullptr, periodic);

    // The list is sorted by centre atom i, then neighbour j: atom a owns entries
    // [atom_start_[a], atom_start_[a+1]).  Entry e adds to row entry_row_[e] of its centre.
    const std::size_t n_entries = list_.size();
    atom_start_.assign(n_atoms + 1, 0);
    for (std::size_t e = 0; e < n_entries; ++e) ++atom_start_[list_.i[e] + 1];
    for (std::size_t a = 0; a < n_atoms; ++a) atom_start_[a + 1] += atom_start_[a];
    entry_species_.resize(n_entries);
    entry_row_.resize(n_entries);
    rows_.assign(n_atoms, 1);
    direct_.assign(n_atoms, 1);
    for (std::size_t a = 0; a < n_atoms; ++a) {
      std::int64_t last = -1;
      for (std::size_t e = atom_start_[a]; e < atom_start_[a + 1]; ++e) {
        const std::int64_t j = list_.j[e];
        entry_species_[e] = species_[j];
        if (j == static_cast<std::int64_t>(a)) {
          entry_row_[e] = 0;
        } else {
          if (j != last) ++rows_[a];
          entry_row_[e] = rows_[a] - 1;
          last = j;
        }
        if (entry_row_[e] != e - atom_start_[a] + 1) direct_[a] = 0;
      }
    }
    pair_offsets_.assign(n_centers + 1, 0);
    for (std::size_t c = 0; c < n_centers; ++c) pair_offsets_[c + 1] = pair_offsets_[c] + rows_[centers[c]];
  }

  std::size_t n_centers() const { return n_centers_; }
  std::size_t n_pairs() const { return pair_offsets_.back(); }
  // Row range [pair_offsets()[c], pair_offsets()[c+1]) of the gradient pairs of centre c.
  const std::vector<std::size_t>& pair_offsets() const { return pair_offsets_; }

  // pair_center (n_pairs,) = position of the centre in `centers`; pair_atom (n_pairs,) = atom.
  void pairs(std::int64_t* pair_center, std::int64_t* pair_atom) const {
    for (std::size_t c = 0; c < n_centers_; ++c) {
      const std::size_t base = pair_offsets_[c];
      const std::int64_t a = centers_[c];
      pair_center[base] = static_cast<std::int64_t>(c);
      pair_atom[base] = a;
      for (std::size_t e = atom_start_[a]; e < atom_start_[a + 1]; ++e) {
        pair_center[base + entry_row_[e]] = static_cast<std::int64_t>(c);
        if (entry_row_[e] > 0) pair_atom[base + entry_row_[e]] = list_.j[e];
      }
    }
  }

  // values (n_centers, n_features); gradients nullptr or (n_pairs, 3, n_features), both
  // overwritten.  Gradient of each centre's p with respect to the positions of its pairs' atoms.
  void compute(double* values, double* gradients) const {
    const std::size_t F = soap_.n_features();
    for_each_center(
        [&](std::size_t c, std::size_t begin, std::size_t count, SoapGTO::Workspace& ws, std::vector<double>& scratch) {
          const std::int64_t a = centers_[c];
          const double* rel = list_.D.data() + 3 * begin;
          const int* sp = entry_species_.data() + begin;
          if (gradients == nullptr) {
            soap_.compute_center(species_[a], count, rel, sp, values + c * F, nullptr, ws);
            return;
          }
          double* rows = gradients + pair_offsets_[c] * 3 * F;
          if (direct_[a]) {
            soap_.compute_center(species_[a], count, rel, sp, values + c * F, rows, ws);
            return;
          }
          scratch.resize((count + 1) * 3 * F);
          soap_.compute_center(species_[a], count, rel, sp, values + c * F, scratch.data(), ws);
          merge_rows(a, begin, count, 3 * F, scratch.data(), rows);
        });
  }

  // Contracted gradients: out (n_pairs, 3) = sum_f weights[c, f] d values[c, f] / d r_atom
  // for every pair (c, atom); weights (n_centers, n_features); values nullptr or
  // (n_centers, n_features), overwritten.  With weights = dE/dp, -out summed per atom are
  // the forces.
  void contract(const double* weights, double* values, double* out) const {
    const std::size_t F = soap_.n_features();
    for_each_center(
        [&](std::size_t c, std::size_t begin, std::size_t count, SoapGTO::Workspace& ws, std::vector<double>& scratch) {
          const std::int64_t a = centers_[c];
          double* rows = out + 3 * pair_offsets_[c];
          if (!direct_[a]) scratch.resize(3 * (count + 1));
          double* dst = direct_[a] ? rows : scratch.data();
          soap_.contract_center(species_[a], count, list_.D.data() + 3 * begin, entry_species_.data() + begin,
                                weights + c * F, values == nullptr ? nullptr : values + c * F, dst, ws);
          if (!direct_[a]) merge_rows(a, begin, count, 3, scratch.data(), rows);
        });
  }

 private:
  // Runs task(c, first entry, entry count, workspace, scratch) for every centre, in parallel.
  template <class Task>
  void for_each_center(Task task) const {
    const long n = static_cast<long>(n_centers_);
    struct State {
      SoapGTO::Workspace ws;
      std::vector<double> scratch;
    };
    parallel_for_with(
        n, [&] { return State{soap_.make_workspace(), {}}; },
        [&](State& s, std::int64_t c) {
          const std::int64_t a = centers_[c];
          task(static_cast<std::size_t>(c), atom_start_[a], atom_start_[a + 1] - atom_start_[a], s.ws, s.scratch);
        });
  }

  // Sums per-entry rows (entry e in scratch row e + 1, the centre in row 0) into the centre's
  // pair rows, for atoms seen through several periodic images.
  void merge_rows(std::int64_t a, std::size_t begin, std::size_t count, std::size_t width, const double* scratch,
                  double* rows) const {
    std::copy(scratch, scratch + width, rows);
    std::fill(rows + width, rows + rows_[a] * width, 0.0);
    for (std::size_t e = 0; e < count; ++e) {
      double* dst = rows + entry_row_[begin + e] * width;
      const double* src = scratch + (e + 1) * width;
      for (std::size_t f = 0; f < width; ++f) dst[f] += src[f];
    }
  }

  const SoapGTO& soap_;
  std::size_t n_centers_;
  std::vector<int> species_;
  std::vector<std::int64_t> centers_;
  NeighborList list_;
  std::vector<std::size_t> atom_start_;
  std::vector<int> entry_species_;
  std::vector<std::size_t> entry_row_, rows_;
  std::vector<std::size_t> pair_offsets_;
  std::vector<char> direct_;
};

}  // namespace clusterforce

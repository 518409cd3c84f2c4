// SOAP power spectrum with the GTO radial basis and real spherical harmonics, defined as
// dscribe's SOAP (rbf="gto", average="off", compression "off", no weighting), with analytic
// gradients returned per (centre, neighbour) pair.
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
//   SoapGTO::compute_center  one centre with an explicit neighbour list (LAMMPS style);
//   SoapStructure            a whole structure (cluster or periodic) built on top of it.
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

#ifdef _OPENMP
#include <omp.h>
#endif

namespace clusterforce {

namespace soap_detail {

constexpr double kPi = 3.14159265358979323846;
// dscribe's decay threshold of the GTOs and of the density Gaussians at the cutoff.
constexpr double kDecayThreshold = 1e-3;
constexpr int kMaxL = 20;

// Eigen-decomposition of a symmetric matrix (row-major n x n) by cyclic Jacobi rotations:
// the basis matrices are tiny (n_max x n_max) and Jacobi keeps eigenvalues of a positive
// definite matrix to high relative accuracy, which the Loewdin S^-1/2 needs.
inline void symmetric_eigen(std::vector<double> a, int n, std::vector<double>& values,
                            std::vector<double>& vectors) {
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
                const double t = (theta >= 0 ? 1.0 : -1.0) /
                                 (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
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
            qz_[m * W + m] = 0.0;
            qr_[m * W + m] = 0.0;
            if (m + 1 <= L) {
                q_[(m + 1) * W + m] = (2.0 * m + 1.0) * z * dfact;
                qz_[(m + 1) * W + m] = (2.0 * m + 1.0) * dfact;
                qr_[(m + 1) * W + m] = 0.0;
            }
            for (int l = m + 2; l <= L; ++l) {
                const double a = 2.0 * l - 1.0, b = l + m - 1.0, inv = 1.0 / (l - m);
                const double q1 = q_[(l - 1) * W + m], q2 = q_[(l - 2) * W + m];
                q_[l * W + m] = (a * z * q1 - b * r2 * q2) * inv;
                qz_[l * W + m] = (a * (q1 + z * qz_[(l - 1) * W + m]) - b * r2 * qz_[(l - 2) * W + m]) * inv;
                qr_[l * W + m] = (a * z * qr_[(l - 1) * W + m] - b * (q2 + r2 * qr_[(l - 2) * W + m])) * inv;
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
    std::vector<double> norm_, q_, qz_, qr_, re_, im_;
};

}  // namespace soap_detail

// SOAP descriptor with the GTO radial basis (see the file comment for the definition).
class SoapGTO {
   public:
    // Per-thread scratch space for compute_center; grows on demand, never shrinks.
    struct Workspace {
        std::vector<double> coeff;      // (n_species, n_lm, n_max)
        std::vector<double> radial;     // per neighbour: G and dG/dr^2, (2, l_max+1, n_max)
        std::vector<double> harmonics;  // per neighbour: Y and grad Y, (4, n_lm)
        std::vector<double> dcoeff;     // (3, n_lm, n_max) for one neighbour
        std::vector<double> exps;       // (l_max+1, n_max)
        std::vector<double> block;      // (n_max, n_max)
        std::vector<int> inside;        // neighbours within the cutoff
        soap_detail::SolidHarmonics ylm{0};
    };

    // species: atomic numbers (any order, duplicates allowed); stored sorted and unique.
    SoapGTO(double r_cut, int n_max, int l_max, double sigma, std::vector<int> species)
        : r_cut_(r_cut), n_max_(n_max), l_max_(l_max), sigma_(sigma) {
        using soap_detail::kPi;
        if (!(sigma > 0.0) || !std::isfinite(sigma))
            throw std::invalid_argument("SOAP sigma must be > 0 Angstrom, got " + std::to_string(sigma));
        if (n_max < 1)
            throw std::invalid_argument("SOAP n_max must be >= 1, got " + std::to_string(n_max));
        if (l_max < 0 || l_max > soap_detail::kMaxL)
            throw std::invalid_argument("SOAP l_max must be in [0, " + std::to_string(soap_detail::kMaxL) +
                                        "], got " + std::to_string(l_max));
        if (!(r_cut > 1.0) || !std::isfinite(r_cut))
            throw std::invalid_argument(
                "SOAP r_cut must be > 1 Angstrom for the GTO radial basis, got " + std::to_string(r_cut));
        if (species.empty()) throw std::invalid_argument("SOAP species list is empty");
        for (int z : species)
            if (z < 1)
                throw std::invalid_argument("SOAP species must be atomic numbers >= 1, got " +
                                            std::to_string(z));
        std::sort(species.begin(), species.end());
        species.erase(std::unique(species.begin(), species.end()), species.end());
        species_ = std::move(species);
        const int S = n_species();
        n_lm_ = (l_max + 1) * (l_max + 1);
        cutoff_ = r_cut + sigma * std::sqrt(-2.0 * std::log(soap_detail::kDecayThreshold));

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
    // Neighbour cutoff: r_cut plus the distance at which a density Gaussian decays to 1e-3.
    double cutoff() const { return cutoff_; }
    const std::vector<int>& species() const { return species_; }
    int n_species() const { return static_cast<int>(species_.size()); }
    std::size_t n_features() const { return n_features_; }
    // alphas (l_max+1, n_max) in 1/Angstrom^2 and betas (l_max+1, n_max, n_max) of the basis.
    const std::vector<double>& alphas() const { return alphas_; }
    const std::vector<double>& betas() const { return betas_; }

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
    void compute_center(int center_species, std::size_t n_neighbors, const double* rel,
                        const int* neighbor_species, double* values, double* gradients,
                        Workspace& ws) const {
        const int S = n_species();
        if (center_species < 0 || center_species >= S)
            throw std::out_of_range("SOAP centre species index " + std::to_string(center_species) +
                                    " outside [0, " + std::to_string(S) + ")");
        for (std::size_t j = 0; j < n_neighbors; ++j)
            if (neighbor_species[j] < 0 || neighbor_species[j] >= S)
                throw std::out_of_range("SOAP neighbour " + std::to_string(j) + " has species index " +
                                        std::to_string(neighbor_species[j]) + " outside [0, " +
                                        std::to_string(S) + ")");
        const bool want_grad = gradients != nullptr;
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
        grow(ws.coeff, static_cast<std::size_t>(S) * NLM * N);
        grow(ws.radial, (n_in + 1) * radial_stride);
        grow(ws.harmonics, (n_in + 1) * harm_stride);
        grow(ws.exps, static_cast<std::size_t>(L1) * N);
        std::fill(ws.coeff.begin(), ws.coeff.begin() + static_cast<std::size_t>(S) * NLM * N, 0.0);

        // Expansion coefficients; the centre atom is entry n_in at r = 0.
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
            double* rad = ws.radial.data() + e * radial_stride;
            double* ylm = ws.harmonics.data() + e * harm_stride;
            radial_functions(x * x + y * y + z * z, rad, want_grad ? rad + L1 * N : nullptr, ws.exps.data());
            ws.ylm.evaluate(x, y, z, ylm, want_grad ? ylm + NLM : nullptr);
            double* c = ws.coeff.data() + static_cast<std::size_t>(s) * NLM * N;
            for (int l = 0; l < L1; ++l) {
                const double* g = rad + l * N;
                for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
                    const double y_lm = ylm[lm];
                    double* cl = c + lm * N;
                    for (int n = 0; n < N; ++n) cl[n] += g[n] * y_lm;
                }
            }
        }

        power_spectrum(ws.coeff.data(), values);
        if (!want_grad) return;

        const std::size_t F = n_features_;
        std::memset(gradients, 0, (n_neighbors + 1) * 3 * F * sizeof(double));
        grow(ws.dcoeff, 3 * static_cast<std::size_t>(NLM) * N);
        grow(ws.block, static_cast<std::size_t>(N) * N);
        for (std::size_t e = 0; e < n_in; ++e) {
            const int j = ws.inside[e];
            const double r[3] = {rel[3 * j], rel[3 * j + 1], rel[3 * j + 2]};
            const int sj = neighbor_species[j];
            const double* g = ws.radial.data() + e * radial_stride;
            const double* dg = g + L1 * N;
            const double* ylm = ws.harmonics.data() + e * harm_stride;
            // d c_{sj,n,lm} / d r_j = 2 r dG_nl/dr^2 Y_lm + G_nl grad Y_lm
            for (int d = 0; d < 3; ++d) {
                const double* gy = ylm + NLM * (d + 1);
                double* dc = ws.dcoeff.data() + static_cast<std::size_t>(d) * NLM * N;
                for (int l = 0; l < L1; ++l) {
                    for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
                        const double a = 2.0 * r[d] * ylm[lm], b = gy[lm];
                        for (int n = 0; n < N; ++n) dc[lm * N + n] = a * dg[l * N + n] + b * g[l * N + n];
                    }
                }
            }
            double* row = gradients + (j + 1) * 3 * F;
            for (int d = 0; d < 3; ++d)
                power_spectrum_derivative(ws.coeff.data(), ws.dcoeff.data() + static_cast<std::size_t>(d) * NLM * N,
                                          sj, ws.block.data(), row + d * F);
        }
        double* center_row = gradients;
        for (std::size_t e = 0; e < n_in; ++e) {
            const double* row = gradients + (ws.inside[e] + 1) * 3 * F;
            for (std::size_t f = 0; f < 3 * F; ++f) center_row[f] -= row[f];
        }
    }

   private:
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
                for (int k = 0; k < N; ++k)
                    overlap[i * N + k] = 0.5 * gam * std::pow(alpha[i] + alpha[k], -l - 1.5);
            soap_detail::symmetric_eigen(overlap, N, values, vectors);
            const double largest = *std::max_element(values.begin(), values.end());
            for (double v : values)
                if (!(v > 1e-15 * largest))
                    throw std::invalid_argument(
                        "SOAP GTO radial basis cannot be orthonormalised (overlap matrix of l=" +
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

    // G_nl(r^2) and, if dg != nullptr, dG_nl/d(r^2), both (l_max+1, n_max).
    void radial_functions(double r2, double* g, double* dg, double* exps) const {
        const int N = n_max_, L1 = l_max_ + 1;
        for (int i = 0; i < L1 * N; ++i) exps[i] = std::exp(exponent_[i] * r2);
        for (int l = 0; l < L1; ++l) {
            const double* e = exps + l * N;
            const double* ex = exponent_.data() + l * N;
            for (int n = 0; n < N; ++n) {
                const double* w = weight_.data() + (static_cast<std::size_t>(l) * N + n) * N;
                double sum = 0.0, dsum = 0.0;
                for (int k = 0; k < N; ++k) {
                    sum += w[k] * e[k];
                    dsum += w[k] * ex[k] * e[k];
                }
                g[l * N + n] = sum;
                if (dg != nullptr) dg[l * N + n] = dsum;
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

    // Derivative of the power spectrum along one Cartesian direction when only the
    // coefficients of species sj change by dcoeff (n_lm, n_max); writes the blocks that
    // involve sj (the others stay zero).
    void power_spectrum_derivative(const double* coeff, const double* dcoeff, int sj, double* block,
                                   double* out) const {
        const int S = n_species(), N = n_max_;
        const std::size_t cs = static_cast<std::size_t>(n_lm_) * N;
        for (int s = 0; s < S; ++s) {
            const double* c = coeff + s * cs;
            const int s1 = std::min(s, sj), s2 = std::max(s, sj);
            double* p = out + block_offset_[s1 * S + s2];
            for (int l = 0; l <= l_max_; ++l) {
                // block[a][b] = sum_m dc[a] c_s[b]
                std::fill(block, block + N * N, 0.0);
                for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
                    const double* dcl = dcoeff + lm * N;
                    const double* cl = c + lm * N;
                    for (int a = 0; a < N; ++a) {
                        const double da = dcl[a];
                        double* b_row = block + a * N;
                        for (int b = 0; b < N; ++b) b_row[b] += da * cl[b];
                    }
                }
                const double pre = prefactor_[l];
                if (s == sj) {
                    for (int n = 0; n < N; ++n)
                        for (int n2 = n; n2 < N; ++n2) *p++ = pre * (block[n * N + n2] + block[n2 * N + n]);
                } else if (sj < s) {
                    for (int n = 0; n < N; ++n)
                        for (int n2 = 0; n2 < N; ++n2) *p++ = pre * block[n * N + n2];
                } else {
                    for (int n = 0; n < N; ++n)
                        for (int n2 = 0; n2 < N; ++n2) *p++ = pre * block[n2 * N + n];
                }
            }
        }
    }

    double r_cut_;
    int n_max_, l_max_;
    double sigma_;
    std::vector<int> species_;
    int n_lm_ = 0;
    double cutoff_ = 0.0;
    std::vector<double> alphas_, betas_;
    std::vector<double> exponent_;  // (l_max+1, n_max): -alpha eta / (eta + alpha)
    std::vector<double> weight_;    // (l_max+1, n_max, n_max): beta pi^{3/2} eta^l/(eta+alpha)^{l+3/2}
    std::vector<double> prefactor_;
    std::vector<std::size_t> block_offset_;
    std::size_t n_features_ = 0;
};

namespace soap_detail {

// Neighbour entries of each centre: every atom (or periodic image of one) within the cutoff,
// the centre itself excluded, sorted by atom index.  A minimal private cell list: the shared
// neighbors.hpp had not landed when this was written.
struct NeighborEntries {
    std::vector<std::size_t> offsets;  // (n_centers + 1,)
    std::vector<std::int64_t> atom;    // atom index of each entry
    std::vector<double> rel;           // (n_entries, 3): image position minus centre position
};

inline void invert3(const double* m, double* inv) {
    const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                       m[2] * (m[3] * m[7] - m[4] * m[6]);
    const double scale = std::max({std::fabs(m[0]), std::fabs(m[1]), std::fabs(m[2]), std::fabs(m[3]),
                                   std::fabs(m[4]), std::fabs(m[5]), std::fabs(m[6]), std::fabs(m[7]),
                                   std::fabs(m[8])});
    if (!(std::fabs(det) > 1e-12 * scale * scale * scale))
        throw std::invalid_argument("periodic SOAP needs a cell with non-zero volume, got determinant " +
                                    std::to_string(det));
    inv[0] = (m[4] * m[8] - m[5] * m[7]) / det;
    inv[1] = (m[2] * m[7] - m[1] * m[8]) / det;
    inv[2] = (m[1] * m[5] - m[2] * m[4]) / det;
    inv[3] = (m[5] * m[6] - m[3] * m[8]) / det;
    inv[4] = (m[0] * m[8] - m[2] * m[6]) / det;
    inv[5] = (m[2] * m[3] - m[0] * m[5]) / det;
    inv[6] = (m[3] * m[7] - m[4] * m[6]) / det;
    inv[7] = (m[1] * m[6] - m[0] * m[7]) / det;
    inv[8] = (m[0] * m[4] - m[1] * m[3]) / det;
}

// cell: (3, 3) rows = lattice vectors, or nullptr; pbc: 3 flags, or nullptr (= none).
inline NeighborEntries find_neighbors(const double* positions, std::size_t n_atoms, const std::int64_t* centers,
                                      std::size_t n_centers, double cutoff, const double* cell,
                                      const bool* pbc) {
    // Images: (atom, position, is the original). Periodic directions replicate every atom over
    // the shifts that can bring it within the cutoff of some centre.
    NeighborEntries out;
    out.offsets.assign(n_centers + 1, 0);
    if (n_centers == 0) return out;
    std::vector<std::int64_t> img_atom;
    std::vector<double> img_pos;
    std::vector<char> img_original;
    double lo[3], hi[3];  // bounding box of the centres
    for (int d = 0; d < 3; ++d) {
        lo[d] = INFINITY;
        hi[d] = -INFINITY;
    }
    for (std::size_t c = 0; c < n_centers; ++c)
        for (int d = 0; d < 3; ++d) {
            lo[d] = std::min(lo[d], positions[3 * centers[c] + d]);
            hi[d] = std::max(hi[d], positions[3 * centers[c] + d]);
        }
    const bool periodic = cell != nullptr && pbc != nullptr && (pbc[0] || pbc[1] || pbc[2]);
    int shift_lo[3] = {0, 0, 0}, shift_hi[3] = {0, 0, 0};
    if (periodic) {
        double inv[9];
        invert3(cell, inv);
        for (int i = 0; i < 3; ++i) {
            if (!pbc[i]) continue;
            // Distance between lattice planes i: 1 / |column i of inv(cell)|.
            const double recip = std::sqrt(inv[i] * inv[i] + inv[3 + i] * inv[3 + i] + inv[6 + i] * inv[6 + i]);
            double fmin = INFINITY, fmax = -INFINITY;
            for (std::size_t a = 0; a < n_atoms; ++a) {
                const double* p = positions + 3 * a;
                const double f = p[0] * inv[i] + p[1] * inv[3 + i] + p[2] * inv[6 + i];
                fmin = std::min(fmin, f);
                fmax = std::max(fmax, f);
            }
            const double reach = cutoff * recip + (fmax - fmin);
            shift_lo[i] = static_cast<int>(std::floor(-reach));
            shift_hi[i] = static_cast<int>(std::ceil(reach));
        }
    }
    const double cut2 = cutoff * cutoff;
    for (int i = shift_lo[0]; i <= shift_hi[0]; ++i)
        for (int j = shift_lo[1]; j <= shift_hi[1]; ++j)
            for (int k = shift_lo[2]; k <= shift_hi[2]; ++k) {
                double t[3] = {0.0, 0.0, 0.0};
                if (periodic)
                    for (int d = 0; d < 3; ++d) t[d] = i * cell[d] + j * cell[3 + d] + k * cell[6 + d];
                const bool original = i == 0 && j == 0 && k == 0;
                for (std::size_t a = 0; a < n_atoms; ++a) {
                    double p[3], box2 = 0.0;
                    for (int d = 0; d < 3; ++d) {
                        p[d] = positions[3 * a + d] + t[d];
                        const double out = std::max({lo[d] - p[d], 0.0, p[d] - hi[d]});
                        box2 += out * out;
                    }
                    if (!original && box2 > cut2) continue;
                    img_atom.push_back(static_cast<std::int64_t>(a));
                    img_pos.insert(img_pos.end(), p, p + 3);
                    img_original.push_back(original);
                }
            }

    // Cell list over the images, bins at least one cutoff wide.
    const std::size_t n_img = img_atom.size();
    double blo[3], bhi[3];
    for (int d = 0; d < 3; ++d) {
        blo[d] = INFINITY;
        bhi[d] = -INFINITY;
    }
    for (std::size_t m = 0; m < n_img; ++m)
        for (int d = 0; d < 3; ++d) {
            blo[d] = std::min(blo[d], img_pos[3 * m + d]);
            bhi[d] = std::max(bhi[d], img_pos[3 * m + d]);
        }
    long nb[3];
    double width[3];
    const double max_bins = 8.0 * static_cast<double>(n_img) + 64.0;
    double scale = 1.0;
    for (;;) {
        double total = 1.0;
        for (int d = 0; d < 3; ++d) {
            nb[d] = std::max(1L, static_cast<long>((bhi[d] - blo[d]) / (cutoff * scale)));
            total *= static_cast<double>(nb[d]);
        }
        if (total <= max_bins) break;
        scale *= 2.0;  // a sparse, spread-out system: fewer, wider bins
    }
    for (int d = 0; d < 3; ++d) width[d] = std::max(cutoff, (bhi[d] - blo[d]) / nb[d]);
    auto bin_of = [&](const double* p, long* b) {
        for (int d = 0; d < 3; ++d)
            b[d] = std::min(nb[d] - 1, std::max(0L, static_cast<long>((p[d] - blo[d]) / width[d])));
    };
    const std::size_t n_bins = static_cast<std::size_t>(nb[0] * nb[1] * nb[2]);
    std::vector<std::size_t> bin_start(n_bins + 1, 0), sorted(n_img);
    std::vector<std::size_t> img_bin(n_img);
    for (std::size_t m = 0; m < n_img; ++m) {
        long b[3];
        bin_of(&img_pos[3 * m], b);
        img_bin[m] = static_cast<std::size_t>((b[0] * nb[1] + b[1]) * nb[2] + b[2]);
        ++bin_start[img_bin[m] + 1];
    }
    for (std::size_t b = 0; b < n_bins; ++b) bin_start[b + 1] += bin_start[b];
    {
        std::vector<std::size_t> fill(bin_start.begin(), bin_start.end() - 1);
        for (std::size_t m = 0; m < n_img; ++m) sorted[fill[img_bin[m]]++] = m;
    }

    std::vector<std::size_t> found;
    for (std::size_t c = 0; c < n_centers; ++c) {
        const std::int64_t ci = centers[c];
        const double* pc = positions + 3 * ci;
        long b[3];
        bin_of(pc, b);
        found.clear();
        for (long i = std::max(0L, b[0] - 1); i <= std::min(nb[0] - 1, b[0] + 1); ++i)
            for (long j = std::max(0L, b[1] - 1); j <= std::min(nb[1] - 1, b[1] + 1); ++j)
                for (long k = std::max(0L, b[2] - 1); k <= std::min(nb[2] - 1, b[2] + 1); ++k) {
                    const std::size_t bin = static_cast<std::size_t>((i * nb[1] + j) * nb[2] + k);
                    for (std::size_t s = bin_start[bin]; s < bin_start[bin + 1]; ++s) {
                        const std::size_t m = sorted[s];
                        if (img_original[m] && img_atom[m] == ci) continue;
                        const double dx = img_pos[3 * m] - pc[0], dy = img_pos[3 * m + 1] - pc[1],
                                     dz = img_pos[3 * m + 2] - pc[2];
                        if (dx * dx + dy * dy + dz * dz <= cut2) found.push_back(m);
                    }
                }
        std::sort(found.begin(), found.end(), [&](std::size_t a, std::size_t b2) {
            return img_atom[a] != img_atom[b2] ? img_atom[a] < img_atom[b2] : a < b2;
        });
        for (std::size_t m : found) {
            out.atom.push_back(img_atom[m]);
            for (int d = 0; d < 3; ++d) out.rel.push_back(img_pos[3 * m + d] - pc[d]);
        }
        out.offsets[c + 1] = out.atom.size();
    }
    return out;
}

}  // namespace soap_detail

// SOAP of a whole structure (a cluster, or periodic along the directions flagged in pbc).
// The constructor finds the neighbours and the gradient pairs; compute() fills caller-owned
// outputs, one OpenMP task per centre.  Gradient pairs of a centre: first the centre itself,
// then every other atom with an image within cutoff(), in increasing atom index.
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
            for (int d = 0; d < 3; ++d)
                if (!std::isfinite(positions[3 * a + d]))
                    throw std::invalid_argument("position of atom " + std::to_string(a) + " is not finite");
            species_[a] = soap.species_index(numbers[a]);
            if (species_[a] < 0) {
                std::string known;
                for (int z : soap.species()) known += (known.empty() ? "" : ", ") + std::to_string(z);
                throw std::invalid_argument("atom " + std::to_string(a) + " has atomic number " +
                                            std::to_string(numbers[a]) +
                                            ", which is not among the SOAP species [" + known + "]");
            }
        }
        centers_.assign(centers, centers + n_centers);
        for (std::size_t c = 0; c < n_centers; ++c)
            if (centers[c] < 0 || static_cast<std::size_t>(centers[c]) >= n_atoms)
                throw std::out_of_range("SOAP centre " + std::to_string(c) + " is atom index " +
                                        std::to_string(centers[c]) + ", outside [0, " + std::to_string(n_atoms) +
                                        ")");
        nb_ = soap_detail::find_neighbors(positions, n_atoms, centers, n_centers, soap.cutoff(), cell, pbc);
        entry_species_.resize(nb_.atom.size());
        for (std::size_t e = 0; e < nb_.atom.size(); ++e) entry_species_[e] = species_[nb_.atom[e]];

        // Rows of the gradient pairs: entry e of centre c adds to row entry_row_[e] of c.
        pair_offsets_.assign(n_centers + 1, 0);
        entry_row_.resize(nb_.atom.size());
        direct_.assign(n_centers, 1);
        for (std::size_t c = 0; c < n_centers; ++c) {
            std::size_t rows = 1;
            std::int64_t last = -1;
            for (std::size_t e = nb_.offsets[c]; e < nb_.offsets[c + 1]; ++e) {
                const std::int64_t a = nb_.atom[e];
                if (a == centers[c]) {
                    entry_row_[e] = 0;
                } else {
                    if (a != last) ++rows;
                    entry_row_[e] = rows - 1;
                    last = a;
                }
                if (entry_row_[e] != e - nb_.offsets[c] + 1) direct_[c] = 0;
            }
            pair_offsets_[c + 1] = pair_offsets_[c] + rows;
        }
    }

    std::size_t n_centers() const { return n_centers_; }
    std::size_t n_pairs() const { return pair_offsets_.back(); }
    // Row range [pair_offsets()[c], pair_offsets()[c+1]) of the gradient pairs of centre c.
    const std::vector<std::size_t>& pair_offsets() const { return pair_offsets_; }

    // pair_center (n_pairs,) = position of the centre in `centers`; pair_atom (n_pairs,) = atom.
    void pairs(std::int64_t* pair_center, std::int64_t* pair_atom) const {
        for (std::size_t c = 0; c < n_centers_; ++c) {
            const std::size_t base = pair_offsets_[c];
            pair_center[base] = static_cast<std::int64_t>(c);
            pair_atom[base] = centers_[c];
            for (std::size_t e = nb_.offsets[c]; e < nb_.offsets[c + 1]; ++e) {
                pair_center[base + entry_row_[e]] = static_cast<std::int64_t>(c);
                if (entry_row_[e] > 0) pair_atom[base + entry_row_[e]] = nb_.atom[e];
            }
        }
    }

    // values (n_centers, n_features); gradients nullptr or (n_pairs, 3, n_features), both
    // overwritten.  Gradient of each centre's p with respect to the positions of its pairs' atoms.
    void compute(double* values, double* gradients) const {
        const std::size_t F = soap_.n_features();
        const long n = static_cast<long>(n_centers_);
#pragma omp parallel
        {
            SoapGTO::Workspace ws = soap_.make_workspace();
            std::vector<double> scratch;
#pragma omp for schedule(dynamic, 1)
            for (long c = 0; c < n; ++c) {
                const std::size_t begin = nb_.offsets[c], count = nb_.offsets[c + 1] - begin;
                const int center_species = species_[centers_[c]];
                double* out_values = values + c * F;
                if (gradients == nullptr) {
                    soap_.compute_center(center_species, count, nb_.rel.data() + 3 * begin,
                                         entry_species_.data() + begin, out_values, nullptr, ws);
                    continue;
                }
                double* rows = gradients + pair_offsets_[c] * 3 * F;
                if (direct_[c]) {
                    soap_.compute_center(center_species, count, nb_.rel.data() + 3 * begin,
                                         entry_species_.data() + begin, out_values, rows, ws);
                    continue;
                }
                // Several images of one atom (periodic): add their rows together.
                if (scratch.size() < (count + 1) * 3 * F) scratch.resize((count + 1) * 3 * F);
                soap_.compute_center(center_species, count, nb_.rel.data() + 3 * begin,
                                     entry_species_.data() + begin, out_values, scratch.data(), ws);
                const std::size_t n_rows = pair_offsets_[c + 1] - pair_offsets_[c];
                std::memcpy(rows, scratch.data(), 3 * F * sizeof(double));
                std::memset(rows + 3 * F, 0, (n_rows - 1) * 3 * F * sizeof(double));
                for (std::size_t e = 0; e < count; ++e) {
                    double* dst = rows + entry_row_[begin + e] * 3 * F;
                    const double* src = scratch.data() + (e + 1) * 3 * F;
                    for (std::size_t f = 0; f < 3 * F; ++f) dst[f] += src[f];
                }
            }
        }
    }

   private:
    const SoapGTO& soap_;
    std::size_t n_centers_;
    std::vector<int> species_;
    std::vector<std::int64_t> centers_;
    soap_detail::NeighborEntries nb_;
    std::vector<int> entry_species_;
    std::vector<std::size_t> pair_offsets_, entry_row_;
    std::vector<char> direct_;
};

}  // namespace clusterforce

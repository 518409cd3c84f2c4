// The built-in model kinds behind the one contract: the LocalModel adapters of gap, sann and dml,
// the global dart predictor, their factories registered in the kinds registry (kinds.hpp), and
// make_predictor, which builds the Predictor of any registered kind's model file (what the Python
// bindings and the LAMMPS pair style call; it lives here so that every caller has the built-in
// kinds registered).
#pragma once

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "baseline.hpp"
#include "dart.hpp"
#include "dml_predictor.hpp"
#include "gap.hpp"
#include "kinds.hpp"
#include "local_model.hpp"
#include "modelfile.hpp"
#include "predictor.hpp"
#include "sann.hpp"
#include "structure.hpp"

namespace clusterforce {

/// An energy kind's model (GapModel, SannModel: n_species, cutoff, centre_energy, has_variance,
/// force_variances) as a LocalModel.
template <class Model>
class EnergyLocal : public LocalModel {
 public:
  explicit EnergyLocal(std::shared_ptr<const Model> model) : m_(std::move(model)) {}
  int n_species() const override { return m_->n_species(); }
  double cutoff() const override { return m_->cutoff(); }
  bool has_energy() const override { return true; }
  bool has_uncertainty() const override { return m_->has_variance(); }
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad, LocalScratch*) const override {
    return m_->centre_energy(cs, rel, sp, n, grad);
  }
  bool has_force_variances() const override { return m_->has_variance(); }
  std::vector<double> force_variances(const Geometry& g) const override { return m_->force_variances(g); }

 protected:
  std::shared_ptr<const Model> m_;
};

/// sann's forces come from a dummy energy fitted apart from its energy (Jindal and Bulusu).
class SannLocal : public EnergyLocal<SannModel> {
 public:
  using EnergyLocal::EnergyLocal;
  std::string nonconservative_reason() const override {
    return "fits forces apart from the energy (the paper's decoupled dummy energy)";
  }
};

/// gap also has the variances of the local and total energies.
class GapLocal : public EnergyLocal<GapModel> {
 public:
  using EnergyLocal::EnergyLocal;
  bool has_energy_variances() const override { return m_->has_variance(); }
  void energy_variances(const Geometry& g, std::vector<double>& atoms, double& total) const override {
    m_->energy_variances(g, atoms, total);
  }
};

class DmlLocal : public LocalModel {
 public:
  explicit DmlLocal(std::shared_ptr<const DmlPredictor> model) : m_(std::move(model)) {}
  int n_species() const override { return static_cast<int>(m_->elements().size()); }
  double cutoff() const override { return m_->cutoff(); }
  bool has_energy() const override { return false; }
  bool has_uncertainty() const override { return true; }
  std::unique_ptr<LocalScratch> make_scratch() const override {
    return std::make_unique<Scratch>(m_->make_workspace());
  }
  /// |F| of the learned part (eV/Angstrom), OAMLM spread, class index into DmlPredictor::classes().
  std::vector<std::string> diagnostic_names() const override { return {"norms", "spread", "class_index"}; }
  CentreForce centre_force(int cs, const double* rel, const int* sp, int n, LocalScratch* scratch,
                           double* diag) const override {
    return result(m_->centre(cs, rel, sp, n, static_cast<Scratch*>(scratch)->ws), diag);
  }
  bool has_centre_block() const override { return true; }
  void centre_forces(const int* cs, const int64_t* offsets, const double* rel, const int* sp, int count,
                     CentreForce* out, double* diag) const override {
    std::vector<DmlCentre> r(static_cast<std::size_t>(count));
    m_->centres(cs, offsets, rel, sp, r.size(), r.data());
    const std::size_t n_diag = diagnostic_names().size();
    for (std::size_t i = 0; i < r.size(); ++i) out[i] = result(r[i], diag ? diag + i * n_diag : nullptr);
  }

 private:
  static CentreForce result(const DmlCentre& r, double* diag) {
    CentreForce out;
    for (int x = 0; x < 3; ++x) out.force[x] = r.force[x];
    out.uncertainty = r.uncertainty;
    if (diag) {
      diag[0] = r.norm;
      diag[1] = r.spread;
      diag[2] = r.class_index;
    }
    return out;
  }
  struct Scratch : LocalScratch {
    explicit Scratch(DmlPredictor::Workspace w) : ws(std::move(w)) {}
    DmlPredictor::Workspace ws;
  };
  std::shared_ptr<const DmlPredictor> m_;
};

/// dart: every atom sees every other (no cutoff), so it runs as a whole free cluster; the driver's
/// input checks and extrapolation flags apply as for the local kinds.
class DartPredictor : public Predictor {
 public:
  DartPredictor(std::vector<std::string> elements, std::shared_ptr<const DartModel> model, PairLimits limits)
      : Predictor("dart", std::move(elements)), m_(std::move(model)), limits_(std::move(limits)) {}
  double cutoff() const override { return 0.0; }
  bool has_energy() const override { return true; }
  bool has_uncertainty() const override { return false; }

  Prediction compute(const Geometry& g, bool uncertainty) const override {
    check_uncertainty_request(uncertainty);
    check_geometry(g, m_->n_species());
    if (g.pbc[0] || g.pbc[1] || g.pbc[2])
      throw std::invalid_argument(
          "dart models free clusters (its L shell holds every other atom); this structure is "
          "periodic");
    // Pairs as close as the shortest training distances: enough for the flags and the checks.
    const Centres c = structure_centres(g, limits_.reach());
    const auto id = [](int64_t i) { return i; };
    check_coincident(c, id);
    const DartResult r = m_->compute(g.positions, g.species, g.n);
    Prediction p;
    p.has_energy = true;
    p.energy = r.energy;
    p.energies = r.atom_energies;
    p.forces = r.forces;
    // Free cluster: W = sum_k r_k (x) F_k (translation invariant, the forces summing to zero).
    p.virial.assign(9, 0.0);
    for (int k = 0; k < g.n; ++k)
      for (int x = 0; x < 3; ++x)
        for (int y = 0; y < 3; ++y) p.virial[3 * x + y] += g.positions[3 * k + x] * r.forces[3 * k + y];
    p.extrapolating = extrapolating_centres(c, limits_);
    return p;
  }

 protected:
  std::string global_reason() const override {
    return "a dart model ranks free clusters by energy (every atom is in some shell of every other, so it has no "
           "cutoff to decompose over ranks) and was fitted to energies only; use it from Python or 'clusterforce "
           "screen', and a gap model for MD";
  }

 private:
  std::shared_ptr<const DartModel> m_;
  PairLimits limits_;
};

// The built-in kinds, registered as an extra kind registers its own (kinds.hpp), in the order
// the registry lists them.
inline const KindRegistrar gap_kind{
    "gap", local_kind([](const ModelFile& mf) {
      return std::make_shared<GapLocal>(std::make_shared<const GapModel>(read_gap_model(mf)));
    })};
inline const KindRegistrar sann_kind{
    "sann", local_kind([](const ModelFile& mf) {
      return std::make_shared<SannLocal>(std::make_shared<const SannModel>(read_sann_model(mf)));
    })};
// dml adds its wall itself, as direct forces (DmlPredictor::centre).
inline const KindRegistrar dml_kind{
    "dml", local_kind([](const ModelFile& mf) {
      auto dml = std::make_shared<const DmlPredictor>(DmlPredictor::from_modelfile(mf));
      if (dml->elements() != model_elements(mf))
        throw ModelFileError(mf.path() + ": metadata 'elements' disagree with the descriptor species");
      return std::make_shared<DmlLocal>(std::move(dml));
    })};
inline const KindRegistrar dart_kind{"dart", [](const ModelFile& mf) -> std::unique_ptr<Predictor> {
                                       std::vector<std::string> elements = model_elements(mf);
                                       const int s = static_cast<int>(elements.size());
                                       auto dart = std::make_shared<const DartModel>(read_dart_model(mf));
                                       check_species_count(mf, elements, dart->n_species());
                                       return std::make_unique<DartPredictor>(std::move(elements), std::move(dart),
                                                                              read_pair_limits(mf, s));
                                     }};

/// The Predictor of a model file of any kind (with the training compositions and charges its
/// predict checks); ModelFileError naming the file otherwise.
inline std::unique_ptr<Predictor> make_predictor(const ModelFile& mf) {
  std::unique_ptr<Predictor> p = detail::make_kind_predictor(mf);
  p->set_domain(TrainingDomain::from_modelfile(mf, p->elements()));
  p->set_domain_reference(read_domain_reference(mf, static_cast<int>(p->elements().size())));
  return p;
}

}  // namespace clusterforce

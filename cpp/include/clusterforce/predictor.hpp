// Whole-structure prediction for every model kind behind one interface: what the Python
// estimators, the ASE calculator and (through LocalPredictor::evaluate) the LAMMPS pair style run.
// models.hpp builds one from a model file (make_predictor).
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "baseline.hpp"
#include "composition.hpp"
#include "domain.hpp"
#include "geometry.hpp"
#include "local_model.hpp"
#include "structure.hpp"

namespace clusterforce {

/// One structure's prediction. energies (n, eV), virial (9, eV) and energy only for energy kinds;
/// forces (3n, eV/Angstrom); uncertainty (n, eV/Angstrom: expected size of the force error) when
/// asked for (force-only kinds always); forces_variance (3n, eV^2/Angstrom^2) and the energy
/// variances (eV^2) where the kind defines them and uncertainty was asked for; diagnostics
/// (n x diagnostic_names) of force-only kinds; extrapolating per atom; warnings: at most one text
/// (Predictor::predict) when the structure's composition or charge is outside the training data;
/// domain: the frame's out-of-domain score (Predictor::predict, files with a domain reference).
struct Prediction {
  bool has_energy = false;
  double energy = 0.0;
  std::vector<double> energies, forces, virial, uncertainty, forces_variance, energies_variance;
  bool has_energy_variance = false;
  double energy_variance = 0.0;
  std::vector<std::string> diagnostic_names;
  std::vector<double> diagnostics;
  std::vector<unsigned char> extrapolating;
  std::vector<std::string> warnings;
  bool has_domain = false;
  DomainScore domain;
};

class LocalPredictor;

class Predictor {
 public:
  Predictor(std::string kind, std::vector<std::string> elements)
      : kind_(std::move(kind)), elements_(std::move(elements)) {}
  virtual ~Predictor() = default;

  const std::string& kind() const { return kind_; }
  /// Chemical symbols in species-index order.
  const std::vector<std::string>& elements() const { return elements_; }
  /// Interaction range (Angstrom); 0 for a global model (dart: every atom sees every other).
  virtual double cutoff() const = 0;
  virtual bool has_energy() const = 0;
  virtual bool has_uncertainty() const = 0;
  /// The per-centre form the pair style drives, or null for a global model.
  virtual const LocalPredictor* local() const { return nullptr; }
  /// Why the model cannot run under a pair style (its atoms split over MPI domains): a global
  /// model's own reason (global_reason) or a generic one; empty for a local model. What the
  /// LAMMPS pair style tells the user instead of naming kinds.
  std::string pair_style_refusal() const {
    if (local()) return {};
    const std::string why = global_reason();
    return why.empty() ? "model kind '" + kind_ + "' has no cutoff and cannot run under pair_style clusterforce" : why;
  }
  /// Why an energy model's forces are not -d energy / dx (empty: they are, or it has no energy);
  /// the pair style logs it, since NVE then does not conserve the energy.
  virtual std::string nonconservative_reason() const { return {}; }
  /// Energy, forces, ... of a structure; uncertainty: also the per-atom force uncertainty.
  virtual Prediction compute(const Geometry& g, bool uncertainty) const = 0;

  /// The compositions and charges of the training data (energy kinds; empty for older files).
  const TrainingDomain& domain() const { return domain_; }
  void set_domain(TrainingDomain domain) { domain_ = std::move(domain); }
  /// The geometric ranges and uncertainty limit the out-of-domain score is scaled to (domain.hpp).
  const DomainReference& domain_reference() const { return reference_; }
  void set_domain_reference(DomainReference reference) { reference_ = std::move(reference); }
  /// compute, plus the warning of a composition or (if given, e) charge outside the training data
  /// and, for files with a domain reference, the frame's out-of-domain score.
  Prediction predict(const Geometry& g, bool uncertainty, std::optional<double> charge) const {
    Prediction p = compute(g, uncertainty);
    if (p.has_energy) p.warnings = domain_.check(domain_.counts(g.species, g.n), charge);
    if (reference_.active()) {
      p.domain = reference_.score(g, p.uncertainty);
      p.has_domain = true;
    }
    return p;
  }

 protected:
  /// Why this global model has no per-centre form, in the kind's words (empty: the generic text).
  virtual std::string global_reason() const { return {}; }
  void check_uncertainty_request(bool uncertainty) const {
    if (uncertainty && !has_uncertainty())
      throw std::invalid_argument("this " + kind_ +
                                  " model carries no uncertainty (gap: trained with variance; sann: files with "
                                  "uncertainty/last_layer_covariance; dart: none); predict without it or retrain");
  }

 private:
  std::string kind_;
  std::vector<std::string> elements_;
  TrainingDomain domain_;
  DomainReference reference_;
};

/// A kind with a cutoff: a LocalModel plus the repulsive wall (energy kinds) and the training
/// distance limits that flag extrapolating atoms.
class LocalPredictor : public Predictor {
 public:
  LocalPredictor(std::string kind, std::vector<std::string> elements, std::shared_ptr<const LocalModel> model,
                 PairWall wall, PairLimits limits)
      : Predictor(std::move(kind), std::move(elements)),
        model_(std::move(model)),
        wall_(std::move(wall)),
        limits_(std::move(limits)) {
    if (!model_) throw std::invalid_argument("LocalPredictor: model is null");
    if (wall_.active() && !model_->has_energy())
      throw std::invalid_argument("LocalPredictor: the driver's wall is for energy kinds (dml adds its own)");
  }

  const LocalModel& model() const { return *model_; }
  double cutoff() const override { return std::max(model_->cutoff(), wall_.cutoff()); }
  bool has_energy() const override { return model_->has_energy(); }
  bool has_uncertainty() const override { return model_->has_uncertainty(); }
  const LocalPredictor* local() const override { return this; }
  std::string nonconservative_reason() const override { return model_->nonconservative_reason(); }

  /// The driver on given centres (LAMMPS: local atoms, neighbours local or ghost).
  CentreResults evaluate(const Centres& centres, int64_t n_targets, const AtomId& id) const {
    return evaluate_centres(*model_, wall_, limits_, centres, n_targets, id);
  }

  Prediction compute(const Geometry& g, bool uncertainty) const override {
    check_uncertainty_request(uncertainty);
    check_geometry(g, model_->n_species());
    const CentreResults r = evaluate(structure_centres(g, cutoff()), g.n, [](int64_t i) { return i; });
    Prediction p;
    p.has_energy = has_energy();
    p.forces = r.forces;
    p.extrapolating = r.extrapolating;
    if (p.has_energy) {
      p.energies = r.energies;
      p.virial = r.virial;
      for (double e : p.energies) p.energy += e;
    } else {
      p.uncertainty = r.uncertainty;
      p.diagnostic_names = model_->diagnostic_names();
      p.diagnostics = r.diagnostics;
    }
    if (uncertainty && model_->has_force_variances()) {
      p.forces_variance = model_->force_variances(g);
      p.uncertainty.assign(g.n, 0.0);
      for (int i = 0; i < g.n; ++i) {
        const double* v = p.forces_variance.data() + 3 * static_cast<std::size_t>(i);
        p.uncertainty[i] = std::sqrt(v[0] + v[1] + v[2]);
      }
    }
    if (uncertainty && model_->has_energy_variances()) {
      model_->energy_variances(g, p.energies_variance, p.energy_variance);
      p.has_energy_variance = true;
    }
    return p;
  }

 private:
  std::shared_ptr<const LocalModel> model_;
  PairWall wall_;
  PairLimits limits_;
};

namespace detail {

// A model whose own energy is zero: the driver then evaluates the wall alone.
class NoEnergy : public LocalModel {
 public:
  explicit NoEnergy(int n_species) : n_species_(n_species) {}
  int n_species() const override { return n_species_; }
  double cutoff() const override { return 0.0; }
  bool has_energy() const override { return true; }
  bool has_uncertainty() const override { return false; }
  double centre_energy(int, const double*, const int*, int, double*, LocalScratch*) const override { return 0.0; }

 private:
  int n_species_;
};

}  // namespace detail

/// Energy and forces of the repulsive wall alone on a structure (what a model's prediction
/// includes of it), through the same driver.
inline Prediction pair_wall_prediction(const PairWall& wall, int n_species, const Geometry& g) {
  if (!wall.active()) throw std::invalid_argument("pair_wall_prediction: the wall has no r_s table");
  return LocalPredictor("baseline", {}, std::make_shared<detail::NoEnergy>(n_species), wall, {}).compute(g, false);
}

}  // namespace clusterforce

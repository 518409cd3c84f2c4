// The compositions and charges an energy model was trained on, and the check of a structure
// against them. A model's energy of a structure is sum_i e0[s_i] plus learned local energies; the
// training energies fix only the combinations of per-element offsets that the training element
// counts span, so a count vector outside that span (or a charge never trained on) gets an energy
// with an offset nothing in the data determined. Written by clusterforce.kinds.composition (Python);
// metadata "training": {"compositions": [[count per species], ...], "charges": [e, ...]} and
// "e0_source" (given, reference:NAME, fit).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "modelfile.hpp"

namespace clusterforce {

class TrainingDomain {
 public:
  TrainingDomain() = default;

  /// From a model file's metadata; empty (checks nothing) for files written before the fields
  /// existed and for force-only kinds. ModelFileError naming the file for malformed fields.
  static TrainingDomain from_modelfile(const ModelFile& mf, const std::vector<std::string>& elements) {
    TrainingDomain d;
    d.elements_ = elements;
    const Json& meta = mf.metadata();
    if (meta.contains("e0_source") && meta.at("e0_source").is_string()) d.e0_source_ = meta.at("e0_source").as_string();
    if (!meta.contains("training") || !meta.at("training").is_object()) return d;
    const Json& t = meta.at("training");
    const std::size_t s = elements.size();
    if (t.contains("compositions")) {
      const Json& rows = t.at("compositions");
      if (!rows.is_array())
        throw ModelFileError(mf.path() + ": metadata field 'training/compositions' is not a list of element counts");
      for (std::size_t r = 0; r < rows.size(); ++r) {
        const Json& row = rows.at(r);
        if (!row.is_array() || row.size() != s)
          throw ModelFileError(mf.path() + ": metadata 'training/compositions' row " + std::to_string(r) +
                               " needs one count per element (" + std::to_string(s) + ")");
        std::vector<double> counts(s);
        for (std::size_t k = 0; k < s; ++k) {
          if (!row.at(k).is_number() || row.at(k).as_double() < 0)
            throw ModelFileError(mf.path() + ": metadata 'training/compositions' row " + std::to_string(r) +
                                 " holds a count that is not a non-negative number");
          counts[k] = row.at(k).as_double();
        }
        d.compositions_.push_back(std::move(counts));
      }
      d.build_basis();
    }
    if (t.contains("charges")) {
      const Json& q = t.at("charges");
      if (!q.is_array())
        throw ModelFileError(mf.path() + ": metadata field 'training/charges' is not a list of numbers");
      for (std::size_t k = 0; k < q.size(); ++k) {
        if (!q.at(k).is_number())
          throw ModelFileError(mf.path() + ": metadata 'training/charges' entry " + std::to_string(k) +
                               " is not a number");
        d.charges_.push_back(q.at(k).as_double());
      }
      d.has_charges_ = true;
    }
    return d;
  }

  bool empty() const { return compositions_.empty() && !has_charges_; }
  const std::vector<std::vector<double>>& compositions() const { return compositions_; }
  const std::vector<double>& charges() const { return charges_; }

  /// Element counts (one per species) of a structure's species indices.
  std::vector<double> counts(const int* species, int n) const {
    std::vector<double> c(elements_.size(), 0.0);
    for (int i = 0; i < n; ++i)
      if (species[i] >= 0 && static_cast<std::size_t>(species[i]) < c.size()) c[species[i]] += 1.0;
    return c;
  }

  /// Whether `counts` lies in the span of the training compositions (its energy offset fixed by
  /// training up to what the data determined).
  bool spans(const std::vector<double>& counts) const {
    if (compositions_.empty()) return true;
    std::vector<double> r = counts;
    project_out(r);
    return norm(r) <= kTolerance * std::max(1.0, norm(counts));
  }

  /// Whether `charge` (e) is one the model was trained on (always true without the field).
  bool knows_charge(double charge) const {
    if (!has_charges_) return true;
    for (double q : charges_)
      if (std::abs(q - charge) < 1e-6) return true;
    return false;
  }

  /// One warning (empty if none) for a structure of element `counts` and, if known, total
  /// `charge` (e): the text names what is outside the training data, the training compositions
  /// and charges, and what to do about it.
  std::vector<std::string> check(const std::vector<double>& counts, std::optional<double> charge) const {
    std::vector<std::string> parts;
    if (!spans(counts)) {
      std::string part = "its composition " + formula(counts) + " is no combination of the training compositions (" +
                         training_formulas() + ")";
      if (e0_source_.empty() || e0_source_ == "fit")
        part +=
            ", so its energy carries per-element offsets that training could not fix (e0 fitted to those "
            "compositions); retrain with --e0 reference or --e0 EL=EV";
      else
        part += "; e0 (" + e0_source_ + ") sets the per-element energies, the rest was never trained on it";
      parts.push_back(part);
    }
    if (charge && !knows_charge(*charge)) {
      std::string known;
      for (std::size_t k = 0; k < charges_.size(); ++k) known += (k ? ", " : "") + number(charges_[k]);
      parts.push_back("its charge " + number(*charge) + " e is not among the training charges (" + known +
                      "); energies of another charge state were not learned");
    }
    if (parts.empty()) return {};
    std::string text = "energy outside the training data: " + parts[0];
    for (std::size_t k = 1; k < parts.size(); ++k) text += "; and " + parts[k];
    return {text};
  }

  /// Chemical formula of element counts, in species order (e.g. "H54C18S18Au25").
  std::string formula(const std::vector<double>& counts) const {
    std::string out;
    for (std::size_t k = 0; k < counts.size() && k < elements_.size(); ++k) {
      if (counts[k] == 0) continue;
      out += elements_[k];
      if (counts[k] != 1) out += number(counts[k]);
    }
    return out.empty() ? "(no atoms)" : out;
  }

 private:
  static constexpr double kTolerance = 1e-8;
  std::vector<std::string> elements_;
  std::string e0_source_;
  std::vector<std::vector<double>> compositions_, basis_;
  std::vector<double> charges_;
  bool has_charges_ = false;

  static double norm(const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x * x;
    return std::sqrt(s);
  }

  static std::string number(double x) {
    if (x == std::round(x)) return std::to_string(static_cast<int64_t>(std::round(x)));
    return std::to_string(x);
  }

  std::string training_formulas() const {
    constexpr std::size_t kShown = 5;
    std::string out;
    for (std::size_t r = 0; r < compositions_.size() && r < kShown; ++r)
      out += (r ? ", " : "") + formula(compositions_[r]);
    if (compositions_.size() > kShown) out += ", ... (" + std::to_string(compositions_.size()) + " in all)";
    return out;
  }

  // v minus its part in the span of basis_.
  void project_out(std::vector<double>& v) const {
    for (const auto& q : basis_) {
      double dot = 0.0;
      for (std::size_t k = 0; k < v.size(); ++k) dot += q[k] * v[k];
      for (std::size_t k = 0; k < v.size(); ++k) v[k] -= dot * q[k];
    }
  }

  // Orthonormal basis of the row space (modified Gram-Schmidt, twice for stability).
  void build_basis() {
    basis_.clear();
    for (const auto& row : compositions_) {
      std::vector<double> v = row;
      const double size = norm(v);
      project_out(v);
      project_out(v);
      const double rest = norm(v);
      if (rest <= kTolerance * std::max(1.0, size)) continue;
      for (double& x : v) x /= rest;
      basis_.push_back(std::move(v));
    }
  }
};

}  // namespace clusterforce

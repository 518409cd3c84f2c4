#include "pair_clusterforce.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <numeric>
#include <optional>

#include "atom.h"
#include "clusterforce/modelfile.hpp"
#include "clusterforce/models.hpp"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

using namespace LAMMPS_NS;

PairClusterforce::PairClusterforce(LAMMPS* lmp) : Pair(lmp) {
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  // The virial is summed per neighbour pair (identical for newton on and off), not by fdotr.
  no_virial_fdotr_compute = 1;
  // Forces on ghost atoms are sent home by this style itself when newton_pair is off.
  comm_reverse_off = 3;
}

PairClusterforce::~PairClusterforce() {
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairClusterforce::allocate() {
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
  delete[] map;
  map = new int[n];
}

void PairClusterforce::settings(int narg, char** arg) {
  if (narg != 1)
    error->all(FLERR,
               "Illegal pair_style clusterforce command: expected exactly one argument, the model file "
               "(pair_style clusterforce MODEL.cfm), got {}",
               narg);
  read_model(arg[0]);
}

// Rank 0 reads the file and broadcasts its bytes (one read of a ~100 MB file instead of one per
// rank); every rank then parses them, checksum included. A failure on any rank stops all of them
// with the reader's message, which names the file and the field.
static std::string read_on_rank0(const std::string& path, MPI_Comm world, std::string& message) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::string bytes;
  long long size = -1;  // -1: rank 0 could not read the file
  if (rank == 0) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.bad()) size = static_cast<long long>(bytes.size());
    }
  }
  MPI_Bcast(&size, 1, MPI_LONG_LONG, 0, world);
  if (size < 0) {
    message = path + ": model file not found or not readable (on MPI rank 0)";
    return {};
  }
  bytes.resize(static_cast<std::size_t>(size));
  // MPI counts are int: send in chunks of at most 1 GiB.
  for (long long done = 0; done < size;) {
    const int chunk = static_cast<int>(std::min<long long>(size - done, 1LL << 30));
    MPI_Bcast(&bytes[static_cast<std::size_t>(done)], chunk, MPI_CHAR, 0, world);
    done += chunk;
  }
  return bytes;
}

void PairClusterforce::read_model(const std::string& path) {
  std::string message;
  const std::string bytes = read_on_rank0(path, world, message);
  std::shared_ptr<const clusterforce::Predictor> predictor;
  std::string version;
  try {
    if (!message.empty()) throw clusterforce::ModelFileError(message);
    const clusterforce::ModelFile mf = clusterforce::ModelFile::from_bytes(bytes, path);
    version = mf.package_version();
    predictor = clusterforce::make_predictor(mf);
    // The model says whether it can run here (a global one cannot); the style names no kind.
    const std::string refusal = predictor->pair_style_refusal();
    if (!refusal.empty()) throw clusterforce::ModelFileError(path + ": " + refusal);
  } catch (const std::exception& e) {
    message = e.what();
  }
  int failed = message.empty() ? 0 : 1, any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, world);
  if (any_failed) {
    if (failed) error->one(FLERR, "pair_style clusterforce: " + message);
    error->all(FLERR, "pair_style clusterforce: another MPI rank failed to read model file " + path);
  }
  model_path_ = path;
  kind_ = predictor->kind();
  model_version_ = version;
  model_elements_ = predictor->elements();
  cutoff_ = predictor->cutoff();
  predictor_ = std::move(predictor);
  local_ = predictor_->local();
  warned_extrapolating_ = false;
  checked_composition_ = false;
}

void PairClusterforce::coeff(int narg, char** arg) {
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR,
               "pair_coeff for clusterforce must be '* * El1 ... El{}' with one element (or NULL) per atom "
               "type: got {} arguments for {} types",
               ntypes, narg, ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for clusterforce must start with '* *', got '{} {}'", arg[0], arg[1]);
  map_element2type(narg - 2, arg + 2);

  species_of_type_.assign(ntypes + 1, -1);
  std::string known;
  for (const auto& e : model_elements_) known += (known.empty() ? "" : ", ") + e;
  for (int t = 1; t <= ntypes; t++) {
    if (map[t] < 0) continue;
    const std::string el = elements[map[t]];
    const auto it = std::find(model_elements_.begin(), model_elements_.end(), el);
    if (it == model_elements_.end())
      error->all(FLERR,
                 "pair_coeff clusterforce: atom type {} is element '{}', which model {} does not know "
                 "(it knows {}); map the type to one of these or to NULL",
                 t, el, model_path_, known);
    species_of_type_[t] = static_cast<int>(it - model_elements_.begin());
  }

  if (comm->me == 0) {
    std::string types;
    for (int t = 1; t <= ntypes; t++)
      types += fmt::format(" {}->{}", t, map[t] < 0 ? std::string("NULL") : model_elements_[species_of_type_[t]]);
    utils::logmesg(lmp, "clusterforce: model {} (kind {}, written by clusterforce {}), cutoff {} A, types{}\n",
                   model_path_, kind_, model_version_.empty() ? "unknown" : model_version_, cutoff_, types);
    if (!predictor_->has_energy())
      utils::logmesg(lmp,
                     "clusterforce: model kind '{}' is force-only (direct, non-conservative forces): potential "
                     "energy, per-atom energy and virial are reported as 0\n",
                     kind_);
    const std::string reason = predictor_->nonconservative_reason();
    if (!reason.empty())
      utils::logmesg(lmp,
                     "clusterforce: model kind '{}' {}: forces are not the gradient of the potential energy, so NVE "
                     "does not conserve it\n",
                     kind_, reason);
  }
}

void PairClusterforce::init_style() {
  if (kind_.empty())
    error->all(FLERR, "pair_style clusterforce: no model loaded; give pair_style clusterforce MODEL.cfm");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style clusterforce requires 'units metal' (eV, Angstrom), got units {}",
               update->unit_style);
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairClusterforce::init_one(int i, int j) {
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoff_;
}

void PairClusterforce::gather_centres() {
  double** x = atom->x;
  const int* type = atom->type;
  const double rc2 = cutoff_ * cutoff_;
  clusterforce::Centres& c = centres_;
  c.nl.offsets.assign(1, 0);
  c.nl.index.clear();
  c.nl.rel.clear();
  c.nl.species.clear();
  c.species.clear();
  c.atom.clear();
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const int si = species_of_type_[type[i]];
    if (si < 0) continue;
    const int* jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int sj = species_of_type_[type[j]];
      if (sj < 0) continue;
      const double d[3] = {x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]};
      if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= rc2) continue;
      c.nl.rel.insert(c.nl.rel.end(), d, d + 3);
      c.nl.species.push_back(sj);
      c.nl.index.push_back(j);
    }
    c.nl.offsets.push_back(static_cast<int64_t>(c.nl.index.size()));
    c.species.push_back(si);
    c.atom.push_back(i);
  }
}

// error->one on the failing rank aborts the job, and under load mpirun can drop that rank's message
// on the way out. Every rank learns of a failure instead (one integer reduction per step), and the
// lowest failing rank's message ends the run through error->all, printed by rank 0.
void PairClusterforce::stop_if_any_rank_failed(std::string failure) {
  const int mine = failure.empty() ? comm->nprocs : comm->me;
  int first = comm->nprocs;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world);
  if (first == comm->nprocs) return;
  int length = static_cast<int>(failure.size());
  MPI_Bcast(&length, 1, MPI_INT, first, world);
  failure.resize(static_cast<std::size_t>(length));
  MPI_Bcast(failure.data(), length, MPI_CHAR, first, world);
  error->all(FLERR, failure);
}

void PairClusterforce::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  gather_centres();
  const int nall = atom->nlocal + atom->nghost;
  const tagint* tag = atom->tag;
  // Messages name atoms by their IDs, ghosts included (a ghost carries its owner's ID).
  const clusterforce::AtomId id = [tag](int64_t k) { return static_cast<int64_t>(tag[k]); };
  clusterforce::CentreResults r;
  std::string failure;
  try {
    r = local_->evaluate(centres_, nall, id);
  } catch (const std::exception& e) {
    failure = fmt::format("pair clusterforce: {}", e.what());
  }
  stop_if_any_rank_failed(failure);
  tally(r);
  warn_extrapolating(r);
  warn_composition();
}

// Energies, forces and virials of the driver's results into LAMMPS' arrays.
void PairClusterforce::tally(const clusterforce::CentreResults& r) {
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost, nc = centres_.size();
  double** f = atom->f;
  if (predictor_->has_energy() && force->newton_pair == 0) {
    // With newton_pair off LAMMPS does not return ghost forces to their owners: sent home here.
    fghost_ = r.forces;
    comm->reverse_comm(this);
    for (int i = 0; i < nlocal; i++)
      for (int x = 0; x < 3; x++) f[i][x] += fghost_[3 * static_cast<std::size_t>(i) + x];
  } else {
    for (int k = 0; k < nall; k++)
      for (int x = 0; x < 3; x++) f[k][x] += r.forces[3 * static_cast<std::size_t>(k) + x];
  }
  uncertainty_.assign(nlocal, 0.0);
  for (int c = 0; c < nc && !r.uncertainty.empty(); c++) uncertainty_[centres_.atom[c]] = r.uncertainty[c];
  if (!predictor_->has_energy()) return;
  for (int c = 0; c < nc; c++) {
    const int i = static_cast<int>(centres_.atom[c]);
    if (eflag_global) eng_vdwl += r.energies[c];
    if (eflag_atom) eatom[i] += r.energies[c];
    const double* v = r.centre_virial.data() + 6 * static_cast<std::size_t>(c);
    if (vflag_global)
      for (int m = 0; m < 6; m++) virial[m] += v[m];
    if (vflag_atom)
      for (int m = 0; m < 6; m++) vatom[i][m] += v[m];
  }
}

// Once per run, on rank 0: the element counts of all atoms (every rank's local atoms summed) against
// the compositions the model was trained on. A pair style has no total charge, so the charge is not
// checked here.
void PairClusterforce::warn_composition() {
  if (checked_composition_) return;
  checked_composition_ = true;
  const clusterforce::TrainingDomain& domain = predictor_->domain();
  if (!predictor_->has_energy() || domain.compositions().empty()) return;
  const int n_species = static_cast<int>(model_elements_.size());
  std::vector<double> mine(n_species, 0.0), all(n_species, 0.0);
  for (int i = 0; i < atom->nlocal; i++) {
    const int s = species_of_type_[atom->type[i]];
    if (s >= 0) mine[s] += 1.0;
  }
  MPI_Allreduce(mine.data(), all.data(), n_species, MPI_DOUBLE, MPI_SUM, world);
  if (comm->me != 0) return;
  for (const std::string& text : domain.check(all, std::nullopt))
    error->warning(FLERR, "clusterforce: model {}: {}. Shown once per run", model_path_, text);
}

// Once per run, on rank 0: how many atoms are closer to a neighbour than any pair of their
// elements in the training data, and the IDs of the first few.
void PairClusterforce::warn_extrapolating(const clusterforce::CentreResults& r) {
  if (warned_extrapolating_) return;
  constexpr int kShown = 5;
  std::vector<tagint> mine;
  for (int c = 0; c < centres_.size(); c++)
    if (r.extrapolating[c]) mine.push_back(atom->tag[centres_.atom[c]]);
  long long count = static_cast<long long>(mine.size()), total = 0;
  MPI_Allreduce(&count, &total, 1, MPI_LONG_LONG, MPI_SUM, world);
  if (total == 0) return;
  warned_extrapolating_ = true;
  std::sort(mine.begin(), mine.end());
  mine.resize(kShown, 0);  // padded with 0, which is no atom ID
  std::vector<tagint> all(static_cast<std::size_t>(kShown) * comm->nprocs);
  MPI_Gather(mine.data(), kShown, MPI_LMP_TAGINT, all.data(), kShown, MPI_LMP_TAGINT, 0, world);
  if (comm->me != 0) return;
  all.erase(std::remove(all.begin(), all.end(), tagint(0)), all.end());
  std::sort(all.begin(), all.end());
  std::string ids;
  for (std::size_t k = 0; k < all.size() && k < static_cast<std::size_t>(kShown); k++)
    ids += (k ? " " : "") + std::to_string(all[k]);
  error->warning(FLERR,
                 "clusterforce: {} atom(s) extrapolating at step {} (a neighbour closer than any pair of their "
                 "elements in the training data of {}), atom IDs {}{}; forces there are not backed by data. Shown once "
                 "per run",
                 total, update->ntimestep, model_path_, ids, total > kShown ? " ..." : "");
}

bool PairClusterforce::has_uncertainty() const {
  return predictor_ && predictor_->has_uncertainty();
}

void PairClusterforce::uncertainty(double* out) {
  const int nlocal = atom->nlocal;
  std::fill(out, out + nlocal, 0.0);
  if (!local_->model().has_force_variances()) {
    std::copy(uncertainty_.begin(), uncertainty_.begin() + std::min<std::size_t>(nlocal, uncertainty_.size()), out);
    return;
  }
  structure_force_uncertainty(out);
}

// Models with whole-structure force variances (gap, sann): the standard deviation of an atom's
// force needs the rows (kernel-row gradients, last-layer Jacobians) of every centre that sees the
// atom and the covariance between them, which does not split over ranks or ghost atoms. Every
// rank therefore gathers the whole system (the free clusters this is for have at most a few
// thousand atoms) and runs the model's force_variances, the C++ path Python and ASE run; the cost
// is that of one Python predict(variance=True) per invocation, on each rank.
void PairClusterforce::structure_force_uncertainty(double* out) {
  const int nlocal = atom->nlocal;
  const int* type = atom->type;
  double** x = atom->x;
  std::vector<tagint> tags;
  std::vector<int> species;
  std::vector<double> positions;
  for (int i = 0; i < nlocal; i++) {
    const int si = species_of_type_[type[i]];
    if (si < 0) continue;
    tags.push_back(atom->tag[i]);
    species.push_back(si);
    for (int k = 0; k < 3; k++) positions.push_back(x[i][k]);
  }
  const int nprocs = comm->nprocs;
  int mine = static_cast<int>(tags.size());
  std::vector<int> counts(nprocs), displs(nprocs, 0), counts3(nprocs), displs3(nprocs, 0);
  MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, world);
  for (int r = 1; r < nprocs; r++) displs[r] = displs[r - 1] + counts[r - 1];
  for (int r = 0; r < nprocs; r++) {
    counts3[r] = 3 * counts[r];
    displs3[r] = 3 * displs[r];
  }
  const int total = displs[nprocs - 1] + counts[nprocs - 1];
  std::vector<tagint> all_tags(total);
  std::vector<int> all_species(total);
  std::vector<double> all_positions(3 * static_cast<std::size_t>(total));
  MPI_Allgatherv(tags.data(), mine, MPI_LMP_TAGINT, all_tags.data(), counts.data(), displs.data(), MPI_LMP_TAGINT,
                 world);
  MPI_Allgatherv(species.data(), mine, MPI_INT, all_species.data(), counts.data(), displs.data(), MPI_INT, world);
  MPI_Allgatherv(positions.data(), 3 * mine, MPI_DOUBLE, all_positions.data(), counts3.data(), displs3.data(),
                 MPI_DOUBLE, world);
  // Atom-ID order on every rank, so the result does not depend on how atoms are distributed.
  std::vector<int> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return all_tags[a] < all_tags[b]; });
  std::vector<tagint> sorted_tags(total);
  std::vector<int> sorted_species(total);
  std::vector<double> sorted_positions(3 * static_cast<std::size_t>(total));
  for (int k = 0; k < total; k++) {
    sorted_tags[k] = all_tags[order[k]];
    sorted_species[k] = all_species[order[k]];
    for (int d = 0; d < 3; d++) sorted_positions[3 * k + d] = all_positions[3 * order[k] + d];
  }
  // LAMMPS box (xprd, yprd, zprd, yz, xz, xy) as lattice vectors in rows.
  const double* h = domain->h;
  const double cell[9] = {h[0], 0.0, 0.0, h[5], h[1], 0.0, h[4], h[3], h[2]};
  clusterforce::Geometry g;
  g.positions = sorted_positions.data();
  g.species = sorted_species.data();
  g.n = total;
  g.pbc = {domain->xperiodic != 0, domain->yperiodic != 0, domain->zperiodic != 0};
  g.cell = (g.pbc[0] || g.pbc[1] || g.pbc[2]) ? cell : nullptr;
  std::vector<double> variances;
  try {
    variances = local_->model().force_variances(g);
  } catch (const std::exception& ex) {
    error->all(FLERR, fmt::format("compute clusterforce/uncertainty/atom: {}", ex.what()));
  }
  for (int i = 0; i < nlocal; i++) {
    if (species_of_type_[type[i]] < 0) continue;
    const auto k = std::lower_bound(sorted_tags.begin(), sorted_tags.end(), atom->tag[i]) - sorted_tags.begin();
    out[i] = std::sqrt(variances[3 * k] + variances[3 * k + 1] + variances[3 * k + 2]);
  }
}

int PairClusterforce::pack_reverse_comm(int n, int first, double* buf) {
  int m = 0;
  for (int i = first; i < first + n; i++)
    for (int x = 0; x < 3; x++) buf[m++] = fghost_[3 * static_cast<std::size_t>(i) + x];
  return m;
}

void PairClusterforce::unpack_reverse_comm(int n, int* list, double* buf) {
  int m = 0;
  for (int k = 0; k < n; k++)
    for (int x = 0; x < 3; x++) fghost_[3 * static_cast<std::size_t>(list[k]) + x] += buf[m++];
}

double PairClusterforce::memory_usage() {
  double bytes = Pair::memory_usage();
  const clusterforce::Centres& c = centres_;
  bytes += sizeof(double) * (c.nl.rel.capacity() + fghost_.capacity() + uncertainty_.capacity());
  bytes += sizeof(int64_t) * (c.nl.offsets.capacity() + c.nl.index.capacity() + c.atom.capacity());
  bytes += sizeof(int) * (c.nl.species.capacity() + c.species.capacity());
  return bytes;
}

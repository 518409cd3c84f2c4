// OpenMP loops that survive exceptions, and OpenMP pragmas that vanish in builds without OpenMP.
//
// An exception that leaves an OpenMP region calls std::terminate (the Python interpreter or the
// LAMMPS run dies with "terminate called after throwing ..."). parallel_for runs body(i) for
// i in [0, n) on the OpenMP threads, catches what an iteration throws and rethrows it after the
// loop. When several iterations fail, the one of the lowest index is rethrown, so the message does
// not depend on the thread count or schedule: iterations above a recorded failure are skipped,
// iterations below it still run.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#define CLUSTERFORCE_PRAGMA(x) _Pragma(#x)
#else
#define CLUSTERFORCE_PRAGMA(x)
#endif

namespace clusterforce {

/// How parallel_for deals out iterations: static blocks (equal cost per iteration) or dynamic
/// chunks of `chunk` iterations (uneven cost, e.g. atoms with different neighbour counts).
/// Loops of fewer than `serial` iterations run on the calling thread: waking the OpenMP team
/// costs more than tiny loops save (and much more when other processes hold the cores).
struct Schedule {
  bool dynamic = true;
  int chunk = 1;
  std::int64_t serial = 2;
  static Schedule static_blocks() { return {false, 0}; }
  static Schedule dynamic_chunks(int chunk = 1) { return {true, chunk < 1 ? 1 : chunk}; }
  /// This schedule, serial below n iterations.
  Schedule serial_below(std::int64_t n) const {
    Schedule s = *this;
    s.serial = n;
    return s;
  }
};

/// Number of threads a parallel_for would use here (1 without OpenMP or inside a parallel region).
inline int parallel_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// The calling thread's place in its OpenMP team: threads split work into contiguous blocks by
/// it, which keeps results in thread order (rank 0 of 1 without OpenMP or outside a region).
struct TeamSlot {
  std::size_t rank = 0;
  std::size_t size = 1;
};

inline TeamSlot team_slot() {
#ifdef _OPENMP
  return {static_cast<std::size_t>(omp_get_thread_num()), static_cast<std::size_t>(omp_get_num_threads())};
#else
  return {};
#endif
}

namespace detail {

// The failure of the lowest index seen so far.
class FirstFailure {
 public:
  explicit FirstFailure(std::int64_t n) : index_(n) {}
  bool above(std::int64_t i) const { return i > index_.load(std::memory_order_relaxed); }
  void record(std::int64_t i, std::exception_ptr e) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (i < index_.load(std::memory_order_relaxed)) {
      index_.store(i, std::memory_order_relaxed);
      error_ = std::move(e);
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<std::int64_t> index_;
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace detail

/// body(state, i) for i in [0, n), with state = make_state() made once per thread (scratch
/// memory); exceptions are rethrown after the loop, the lowest index's first.
template <class MakeState, class Body>
void parallel_for_with(std::int64_t n, MakeState&& make_state, Body&& body, Schedule schedule = {}) {
  if (n <= 0) return;
  detail::FirstFailure failure(n);
  const auto run = [&](auto& state, std::int64_t i) {
    if (failure.above(i)) return;
    try {
      body(state, i);
    } catch (...) {
      failure.record(i, std::current_exception());
    }
  };
  CLUSTERFORCE_PRAGMA(omp parallel if (n >= schedule.serial)) {
    // Every thread must reach the worksharing loop, so a state that cannot be made (allocation)
    // is recorded as a failure of iteration 0 and the thread's share is skipped.
    std::optional<decltype(make_state())> state;
    try {
      state.emplace(make_state());
    } catch (...) {
      failure.record(0, std::current_exception());
    }
    if (schedule.dynamic) {
      CLUSTERFORCE_PRAGMA(omp for schedule(dynamic, schedule.chunk))
      for (std::int64_t i = 0; i < n; ++i)
        if (state) run(*state, i);
    } else {
      CLUSTERFORCE_PRAGMA(omp for schedule(static))
      for (std::int64_t i = 0; i < n; ++i)
        if (state) run(*state, i);
    }
  }
  failure.rethrow();
}

/// body(i) for i in [0, n) on the OpenMP threads; exceptions rethrown after the loop.
template <class Body>
void parallel_for(std::int64_t n, Body&& body, Schedule schedule = {}) {
  struct NoState {};
  parallel_for_with(n, [] { return NoState{}; }, [&](NoState&, std::int64_t i) { body(i); }, schedule);
}

}  // namespace clusterforce

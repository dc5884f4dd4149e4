// recur/train/communicator.h - the processes of one data-parallel training run (train/loop.h).
//
// One process is the default. Started by an MPI launcher (mpirun, mpiexec, srun), a recur built
// with MPI (CMake option RECUR_MPI, on where MPI is found) joins the job's MPI_COMM_WORLD: every
// rank reads its share of each global batch, and gradients and loss sums are added up across
// ranks with MPI_Allreduce before the optimizer step (docs/distributed.md). All communication is
// MPI's; recur has no networking of its own.
//
// Determinism: MPI_Allreduce with the same rank count, message sizes and MPI library reduces in
// the same order every time, so a run repeated with N ranks gives the same bits; against one
// process the sums differ only by float rounding.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace recur {

class Communicator {
 public:
  // The job this process belongs to: MPI's world when launched by an MPI launcher, else a group
  // of one. MPI is initialised on the first call and finalised at exit. A launch of several
  // processes with a recur built without MPI throws Error (each would otherwise train alone).
  static Communicator& world();
  // A group of one, whatever the launcher (tests, and code that must not communicate).
  static Communicator& single();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }

  // In place, every rank ends with the element-wise sum (or max) over ranks.
  void allreduce_sum(std::span<float> v) const;
  void allreduce_sum(std::span<double> v) const;
  void allreduce_max(std::span<double> v) const;
  // Non-blocking sums (gradient buckets while backward still runs): start_allreduce_sum begins
  // the in-place sum of `v`, which must stay untouched until wait_all(); progress() lets MPI
  // advance the started sums; wait_all() finishes every started one.
  void start_allreduce_sum(std::span<float> v) const;
  void progress() const;
  void wait_all() const;
  // Every rank's value, in rank order.
  std::vector<uint64_t> allgather(uint64_t v) const;
  // The concatenation of every rank's `local`, in rank order (sizes may differ).
  std::vector<float> allgatherv(std::span<const float> local) const;
  // Ends every process of the job at once (a rank that cannot go on while the others wait in a
  // collective); prints `message` first. Returns only for a group of one.
  void abort(const std::string& message, int code) const;

 private:
  Communicator(int rank, int size, bool mpi) : rank_(rank), size_(size), mpi_(mpi) {}
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

// For a program's error path: when MPI was started with several ranks, prints `message` and
// ends every rank of the job with `code` (MPI_Abort); otherwise does nothing. Never starts MPI.
void abort_job_if_distributed(const std::string& message, int code);
// "rank R of N: " inside a job of several ranks, else "".
std::string job_rank_prefix();

// Whether this build has MPI (RECUR_MPI), and the name of the library it was built against.
bool built_with_mpi();
std::string mpi_library_version();

// The share of `n` items (batch rows) that rank `rank` of `size` takes: rows [begin, end), the
// first n % size ranks one more. Used by every task, so the split is the same everywhere.
struct Shard {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Shard shard_of(int64_t n, int rank, int size);

}  // namespace recur

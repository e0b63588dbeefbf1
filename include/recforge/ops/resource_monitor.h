// The resource monitor of `recforge sweep`: reads the machine's CPU count, load average
// (/proc/loadavg) and available memory (/proc/meminfo MemAvailable) and decides whether
// one more trial may start now.
//
// The decision is a pure function of the readings (DecideStart), so tests inject
// readings and check every branch without a real machine. Rules, in order:
//   1. never more than max_parallel trials at once;
//   2. the estimated bytes of the running trials plus the candidate must fit the
//      memory budget (when one is set);
//   3. the candidate's estimate plus a reserve must fit the available memory;
//   4. the load not explained by our own trials, plus the threads of the running trials
//      and of the candidate, must not exceed the CPU count.
// Rules 2-4 only hold a trial back while another one runs: with nothing running the
// next trial always starts (alone, with a warning when it is over the budget or the
// free memory), so a sweep never waits forever and a tiny budget means one at a time.
//
// The 1-minute load average lags: right after our trials finish it still counts them
// for a while, which lowers parallelism briefly; it never blocks the sweep (rule above).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace recforge::ops {

// One look at the machine.
struct ResourceReadings {
  int cpus = 1;                        // CPUs this process may run on (affinity mask)
  double load1 = 0;                    // 1-minute load average
  std::uint64_t mem_available = 0;     // bytes (MemAvailable)
};

// What the sweep allows.
struct SchedulerLimits {
  int max_parallel = 1;                // >= 1
  std::uint64_t memory_budget = 0;     // bytes for all running trials together; 0 = none
  int threads_per_trial = 1;           // each trial's --threads
  std::uint64_t memory_reserve = 256ull << 20;  // kept free for the parent and the system
};

// The trials running now.
struct RunningTrials {
  std::size_t count = 0;
  std::uint64_t estimated_bytes = 0;   // sum of their estimates
};

enum class StartVerdict { kStart, kWait };

// Why a trial waits (or the warning attached to a start).
enum class WaitReason { kNone, kMaxParallel, kMemoryBudget, kFreeMemory, kLoad };

struct StartDecision {
  StartVerdict verdict = StartVerdict::kStart;
  WaitReason reason = WaitReason::kNone;  // kWait: why; kStart: what was overridden (running alone)
  // kStart: "est. 120 MB; free 20.0 GB; load 0.4" (+ "; over the budget of 1 MB, running alone").
  // kWait: "waiting: load 3.1 > 2 cores (1 running)", "waiting: memory budget 2.0 GB ...".
  std::string message;
};

// Decides whether a trial estimated at `trial_bytes` may start (rules above).
StartDecision DecideStart(const ResourceReadings& readings, const SchedulerLimits& limits,
                          const RunningTrials& running, std::uint64_t trial_bytes);

// Parses /proc/loadavg and /proc/meminfo text (exposed for tests). Missing fields read
// as 0 load / 0 bytes; `cpus` is copied through.
ResourceReadings ParseProcReadings(std::string_view loadavg, std::string_view meminfo, int cpus);

// Source of readings: the real /proc by default, or an injected function (tests).
class ResourceMonitor {
 public:
  using Reader = std::function<ResourceReadings()>;
  ResourceMonitor();  // reads /proc and sched_getaffinity
  explicit ResourceMonitor(Reader reader) : reader_(std::move(reader)) {}
  ResourceReadings Read() const { return reader_(); }

  // The real machine; a missing /proc gives load 0 and free memory 0 (unknown).
  static ResourceReadings ReadMachine();

 private:
  Reader reader_;
};

// "2GiB", "512MiB", "1.5GB", "100M", "4096" (bytes): binary (KiB, MiB, GiB, TiB, and the
// short K, M, G, T) and decimal (KB, MB, GB, TB) units, case-insensitive. Throws
// InvalidArgument naming the text otherwise.
std::uint64_t ParseByteSize(std::string_view text);
// "120 MB", "1.5 GB" (decimal, for log lines).
std::string FormatBytes(std::uint64_t bytes);

}  // namespace recforge::ops

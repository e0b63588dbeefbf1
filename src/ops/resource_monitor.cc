#include "recforge/ops/resource_monitor.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "recforge/core/error.h"

namespace recforge::ops {

namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string FormatBytes(std::uint64_t bytes) {
  const double value = static_cast<double>(bytes);
  if (value >= 1e12) return fmt::format("{:.1f} TB", value / 1e12);
  if (value >= 1e9) return fmt::format("{:.1f} GB", value / 1e9);
  if (value >= 1e6) return fmt::format("{:.0f} MB", value / 1e6);
  if (value >= 1e3) return fmt::format("{:.0f} kB", value / 1e3);
  return fmt::format("{} B", bytes);
}

std::uint64_t ParseByteSize(std::string_view text) {
  auto invalid = [&] {
    return InvalidArgument(fmt::format(
        "memory size '{}' is not a size (examples: 2GiB, 512MiB, 1.5GB, 100M, 4096)", text));
  };
  std::string lower = Lower(text);
  lower.erase(std::remove_if(lower.begin(), lower.end(), [](char c) { return c == ' ' || c == '_'; }),
              lower.end());
  std::size_t end = 0;
  while (end < lower.size() && (std::isdigit(static_cast<unsigned char>(lower[end])) || lower[end] == '.')) ++end;
  if (end == 0) throw invalid();
  double number = 0;
  try {
    std::size_t used = 0;
    number = std::stod(lower.substr(0, end), &used);
    if (used != end) throw invalid();
  } catch (const std::logic_error&) {
    throw invalid();
  }
  const std::string unit = lower.substr(end);
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  else throw invalid();
  const double bytes = number * scale;
  if (!std::isfinite(bytes) || bytes >= 1.8e19) throw invalid();
  return static_cast<std::uint64_t>(std::llround(bytes));
}

ResourceReadings ParseProcReadings(std::string_view loadavg, std::string_view meminfo, int cpus) {
  ResourceReadings readings;
  readings.cpus = std::max(1, cpus);
  {
    std::istringstream in{std::string(loadavg)};
    double load = 0;
    if (in >> load) readings.load1 = load;
  }
  std::istringstream in{std::string(meminfo)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    std::uint64_t kib = 0;
    if (fields >> kib) readings.mem_available = kib * 1024;
    break;
  }
  return readings;
}

ResourceReadings ResourceMonitor::ReadMachine() {
  return ParseProcReadings(ReadSmallFile("/proc/loadavg"), ReadSmallFile("/proc/meminfo"), AffinityCpus());
}

ResourceMonitor::ResourceMonitor() : reader_(&ResourceMonitor::ReadMachine) {}

StartDecision DecideStart(const ResourceReadings& readings, const SchedulerLimits& limits,
                          const RunningTrials& running, std::uint64_t trial_bytes) {
  StartDecision decision;
  const int cpus = std::max(1, readings.cpus);
  const int threads = std::max(1, limits.threads_per_trial);
  const bool alone = running.count == 0;
  auto wait = [&](WaitReason reason, std::string message) {
    decision.verdict = StartVerdict::kWait;
    decision.reason = reason;
    decision.message = std::move(message);
    return decision;
  };

  // 1. The hard cap.
  if (running.count >= static_cast<std::size_t>(std::max(1, limits.max_parallel))) {
    return wait(WaitReason::kMaxParallel,
                fmt::format("waiting: {} trials running = max_parallel", running.count));
  }
  std::string note;
  // 2. The memory budget of the whole sweep.
  if (limits.memory_budget > 0 && running.estimated_bytes + trial_bytes > limits.memory_budget) {
    if (!alone) {
      return wait(WaitReason::kMemoryBudget,
                  fmt::format("waiting: memory budget {}: {} running use est. {}, the next needs est. {}",
                              FormatBytes(limits.memory_budget), running.count,
                              FormatBytes(running.estimated_bytes), FormatBytes(trial_bytes)));
    }
    decision.reason = WaitReason::kMemoryBudget;
    note += fmt::format("; over the memory budget of {}, running it alone", FormatBytes(limits.memory_budget));
  }
  // 3. What the machine has free now (0 = unknown: /proc unreadable).
  if (readings.mem_available > 0 && trial_bytes + limits.memory_reserve > readings.mem_available) {
    if (!alone) {
      return wait(WaitReason::kFreeMemory,
                  fmt::format("waiting: free memory {} < est. {} + reserve {} ({} running)",
                              FormatBytes(readings.mem_available), FormatBytes(trial_bytes),
                              FormatBytes(limits.memory_reserve), running.count));
    }
    if (decision.reason == WaitReason::kNone) decision.reason = WaitReason::kFreeMemory;
    note += fmt::format("; free memory {} is short of it, running it alone", FormatBytes(readings.mem_available));
  }
  // 4. CPU load: our own running trials explain up to count x threads of it; the rest
  // comes from elsewhere (other users, builds) and takes cores away from us.
  const double ours = static_cast<double>(running.count) * threads;
  const double external = std::max(0.0, readings.load1 - ours);
  const double projected = external + ours + threads;
  if (!alone && projected > cpus) {
    return wait(WaitReason::kLoad, fmt::format("waiting: load {:.1f} > {} cores ({} running, {} thread{} each)",
                                               projected, cpus, running.count, threads, threads == 1 ? "" : "s"));
  }
  decision.verdict = StartVerdict::kStart;
  decision.message = fmt::format("est. {}; free {}; load {:.1f}{}", FormatBytes(trial_bytes),
                                 readings.mem_available > 0 ? FormatBytes(readings.mem_available) : "unknown",
                                 readings.load1, note);
  return decision;
}

}  // namespace recforge::ops

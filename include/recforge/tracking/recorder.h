// RunRecorder: one command's run in the tracking store, from start to a final status.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "recforge/tracking/store.h"

namespace recforge::tracking {

// Starts a run on construction and heartbeats it from a background thread (its own
// SQLite connection) every kHeartbeatInterval. Finish() ends it FINISHED; Fail()
// FAILED with the reason. A recorder destroyed without either (an exception unwound
// through it) ends the run FAILED ("aborted: ..."), or KILLED when an interrupt
// (SIGINT / SIGTERM) was seen: InstallInterruptHandlers() sets the flag that
// Interrupted() reads, and long loops may poll it to stop cleanly.
class RunRecorder {
 public:
  static constexpr std::chrono::seconds kHeartbeatInterval{30};

  RunRecorder(const TrackingLocation& location, const RunStart& start);
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  const std::string& run_id() const;
  Store& store();  // the recorder's own connection, for logging from the owning thread

  void Finish();
  void Fail(const std::string& reason);

  static void InstallInterruptHandlers();
  static bool Interrupted();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recforge::tracking

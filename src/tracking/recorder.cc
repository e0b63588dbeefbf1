#include "recforge/tracking/recorder.h"

#include <signal.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace recforge::tracking {

namespace {

// Written from the signal handler: lock-free atomics are async-signal-safe.
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the interrupt flag must be lock-free to be set from a signal handler");

extern "C" void OnInterrupt(int signal_number) {
  // Only async-signal-safe work here: store the flag. SA_RESETHAND has already put
  // the default action back, so a second Ctrl-C terminates at once.
  g_signal.store(signal_number, std::memory_order_relaxed);
  g_interrupted.store(true, std::memory_order_relaxed);
}

}  // namespace

struct RunRecorder::Impl {
  std::unique_ptr<Store> store;
  std::string run_id;
  bool ended = false;

  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread heartbeat;

  void StopHeartbeat() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }
};

RunRecorder::RunRecorder(const TrackingLocation& location, const RunStart& start) : impl_(std::make_unique<Impl>()) {
  impl_->store = std::make_unique<Store>(location);
  impl_->run_id = impl_->store->StartRun(start).id;
  std::unique_ptr<Store> beat_store;
  try {
    // The heartbeat thread gets its own connection (one Store per thread).
    beat_store = std::make_unique<Store>(location);
  } catch (const std::exception& error) {
    impl_->store->EndRun(impl_->run_id, RunStatus::kFailed, std::string("tracking: ") + error.what());
    throw;
  }
  Impl* impl = impl_.get();
  impl_->heartbeat = std::thread([impl, beat = std::move(beat_store)] {
    std::unique_lock lock(impl->mutex);
    while (!impl->wake.wait_for(lock, kHeartbeatInterval, [impl] { return impl->stopping; })) {
      lock.unlock();
      try {
        beat->Heartbeat(impl->run_id);
      } catch (...) {
        // A missed heartbeat is not worth failing the command for; the next one retries.
      }
      lock.lock();
    }
  });
}

RunRecorder::~RunRecorder() {
  impl_->StopHeartbeat();
  if (impl_->ended) return;
  try {
    if (Interrupted()) {
      int signal_number = g_signal.load(std::memory_order_relaxed);
      impl_->store->EndRun(impl_->run_id, RunStatus::kKilled,
                           signal_number == SIGTERM ? "interrupted by SIGTERM" : "interrupted by SIGINT");
    } else {
      impl_->store->EndRun(impl_->run_id, RunStatus::kFailed,
                           std::uncaught_exceptions() > 0
                               ? "aborted: an error stopped the command before the run finished"
                               : "aborted: the run ended without Finish() or Fail()");
    }
  } catch (...) {
    // Destructors must not throw; the next Store open marks the run FAILED anyway.
  }
}

const std::string& RunRecorder::run_id() const { return impl_->run_id; }

Store& RunRecorder::store() { return *impl_->store; }

void RunRecorder::Finish() {
  impl_->store->EndRun(impl_->run_id, RunStatus::kFinished);
  impl_->ended = true;
}

void RunRecorder::Fail(const std::string& reason) {
  impl_->store->EndRun(impl_->run_id, RunStatus::kFailed, reason);
  impl_->ended = true;
}

void RunRecorder::InstallInterruptHandlers() {
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool RunRecorder::Interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

}  // namespace recforge::tracking

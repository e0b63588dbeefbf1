// cpp-httplib glue of the dashboard (`recforge ui`): exclusive port binding and the
// listen thread. The loopback checks (host_check.h) are shared with the event-driven
// front end of `recforge serve` (http_front.h), which binds exclusively the same way. Consumers carry cpp-httplib's pkg-config flags (Debian's build
// fixes its class layout), which linking recforge_http passes on.
#pragma once

#include <httplib.h>

#include <atomic>
#include <string>
#include <string_view>
#include <thread>

#include "net/host_check.h"

namespace recforge::net {

// httplib's default socket options set SO_REUSEPORT, which lets a second server bind the
// same port and silently share the traffic. This keeps SO_REUSEADDR (a quick restart
// after TIME_WAIT still works) and TCP_NODELAY, so an occupied port is an error.
void UseExclusivePort(httplib::Server& server);

// Binds host:port (0: an ephemeral port) and runs the listen loop on `thread`, which
// sets `done` when the loop ends. Returns the bound port once the server accepts
// (a stop() before the loop started would otherwise be lost). Throws IoError when the
// address cannot be bound.
int StartListening(httplib::Server& server, const std::string& host, int port, std::thread& thread,
                   std::atomic<bool>& done);

}  // namespace recforge::net

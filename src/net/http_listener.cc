#include "net/http_listener.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>

#include <fmt/format.h>

#include "recforge/core/error.h"

namespace recforge::net {

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

std::string_view HostName(std::string_view header) {
  if (header.starts_with("[")) {
    auto close = header.find(']');
    return close == std::string_view::npos ? header : header.substr(0, close + 1);
  }
  auto colon = header.find(':');
  return colon == std::string_view::npos ? header : header.substr(0, colon);
}

void UseExclusivePort(httplib::Server& server) {
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  });
}

int StartListening(httplib::Server& server, const std::string& host, int port, std::thread& thread,
                   std::atomic<bool>& done) {
  int bound = port;
  if (port == 0) {
    bound = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    throw IoError(fmt::format("cannot listen on {}:{} (address in use, or not an address of this host)", host, port));
  }
  done = false;
  thread = std::thread([&server, &done] {
    server.listen_after_bind();
    done = true;
  });
  while (!server.is_running() && !done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return bound;
}

}  // namespace recforge::net

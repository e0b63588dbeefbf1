// The loopback checks behind the DNS-rebinding guard of both HTTP front ends
// (`recforge ui` on httplib, `recforge serve` on Beast): a daemon bound to loopback
// answers only requests whose Host header is a loopback name. No httplib here.
#pragma once

#include <string_view>

namespace recforge::net {

// "localhost", "::1", "[::1]" or 127.x.x.x.
bool IsLoopbackHost(std::string_view host);

// A Host header without its port ("127.0.0.1:5000" -> "127.0.0.1", "[::1]:80" -> "[::1]").
std::string_view HostName(std::string_view header);

}  // namespace recforge::net

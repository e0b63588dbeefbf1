-- wrk script of the serving benchmark (issue 5): every request is
--   POST /recommend {"user_id": U, "top_k": K, "exclude_seen": true}
-- for a random user U of a user list file (one id per line), the same for both servers.
-- Every request is formatted once in init(), so request() only picks one: the load
-- generator shares the server's cores, and formatting each request in Lua cost wrk
-- about a sixth of the machine's CPU against a fast server.
--
--   wrk -t2 -c32 -d30s --latency -s bench/peer/recommend.lua http://127.0.0.1:PORT \
--       -- USERS.txt [TOP_K=10] [SEED=1]
--
-- At the end one line `WRK_JSON {...}` gives requests, duration, errors by kind and the
-- latency percentiles in microseconds, for bench/peer/serve_bench.py to parse.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local users = {}
local top_k = 10
local headers = {["Content-Type"] = "application/json"}

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s recommend.lua URL -- USERS.txt [TOP_K] [SEED]")
  end
  top_k = tonumber(args[2] or "10")
  local seed = tonumber(args[3] or "1")
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    if #line > 0 then
      local body = '{"user_id":' .. json_string(line) .. ',"top_k":' .. top_k .. ',"exclude_seen":true}'
      users[#users + 1] = wrk.format("POST", "/recommend", headers, body)
    end
  end
  file:close()
  if #users == 0 then
    error(path .. ": no users")
  end
  math.randomseed(seed * 7919 + (id or 0) * 104729)
end

function request()
  return users[math.random(#users)]
end

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d',
                  e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f',
                  latency:percentile(50), latency:percentile(90), latency:percentile(99),
                  latency:percentile(99.9), latency.max, latency.mean),
  }
  io.write("WRK_JSON {" .. table.concat(parts, ",") .. "}\n")
end

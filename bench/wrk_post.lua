-- wrk script: POST the JSON body in $BENCH_BODY_FILE with extra headers from $BENCH_HEADERS
-- ("name: value|name2: value2"); done() prints one JSON line the harness parses.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench-local-7f3c2a91")
-- $BENCH_VARY set: every request's body has "{n}" replaced by a counter (a new prompt each time)
if os.getenv("BENCH_VARY") then
  local template, counter = wrk.body, 0
  request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, (string.gsub(template, "{n}", tostring(counter))))
  end
end
local extra = os.getenv("BENCH_HEADERS") or ""
for pair in string.gmatch(extra, "[^|]+") do
  local k, v = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
  if k then wrk.headers[k] = v end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end

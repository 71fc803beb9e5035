-- Replays a file of prepared requests, one per line: METHOD<TAB>PATH<TAB>BODY.
-- Each wrk thread takes its own slice of the lines, so no two connections
-- send the same request (each confirm confirms a different payment).
-- Arguments: <file> <threads> <expected status> <bearer token>
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  expected = tonumber(args[3])
  auth = "Bearer " .. args[4]
  lines, unexpected, wrapped = {}, 0, 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then table.insert(lines, line) end
    i = i + 1
  end
  if #lines == 0 then  -- fewer lines than threads (the baseline): share them
    for line in io.lines(path) do table.insert(lines, line) end
  end
  idx = 0
end

function request()
  idx = idx + 1
  if idx > #lines then idx = 1; wrapped = wrapped + 1 end
  local method, path, body = lines[idx]:match("^(%S+)\t(%S+)\t?(.*)$")
  local headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
  if body == "" then body = nil end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local bad, wraps = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
    wraps = wraps + thread:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"unexpected_status": %d, "socket_errors": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), bad, e.connect + e.read + e.write + e.timeout, wraps))
end

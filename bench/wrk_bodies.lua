-- wrk script for bench.throughput: POSTs each line of a file as one notification.
-- args: bodies file, first line to use (1-based), "wrap" (start again at the end) or "once" (stop).
local bodies, next_body, wrap, errors = {}, 0, true, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local first, n = tonumber(args[2]) or 1, 0
  for line in io.lines(args[1]) do
    n = n + 1
    if n >= first then bodies[#bodies + 1] = line end
  end
  wrap = args[3] ~= "once"
end

function request()
  next_body = next_body + 1
  if next_body > #bodies then
    if not wrap then
      -- Out of fresh bodies: stop, and send nothing a deduplicating route would take as a repeat.
      wrk.thread:stop()
      return wrk.format("GET", "/exhausted")
    end
    next_body = 1
  end
  wrk.thread:set("sent", next_body)
  return wrk.format("POST", "/shop/notify",
    {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"}, bodies[next_body])
end

function response(status, headers, body)
  -- Only `success` is an acknowledgement; anything else (a `fail`, a 4xx/5xx) is an error.
  if status ~= 200 or body ~= "success" then
    errors = errors + 1
    wrk.thread:set("errors", errors)
  end
end

function done(summary, latency, requests)
  local refused, sent = 0, 0
  for _, thread in ipairs(threads) do
    refused = refused + (thread:get("errors") or 0)
    sent = sent + (thread:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "refused": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d, "sent": %d}\n',
    summary.requests, summary.duration, refused, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), sent))
end

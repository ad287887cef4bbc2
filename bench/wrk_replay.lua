-- wrk script for bench/ingest.py: replays pre-generated, pre-signed Kapso deliveries.
--
--   wrk -t N ... -s bench/wrk_replay.lua URL -- DELIVERIES_FILE PATH N
--
-- DELIVERIES_FILE holds records of "event \t idempotency-key \t signature \t body-length \n",
-- followed by exactly body-length bytes of body and one "\n". With several wrk threads each takes
-- every n-th record, so no two threads send the same delivery; a thread that runs out starts over
-- (those repeats are duplicates: done() reports how many distinct deliveries were sent).
-- done() prints one line "WRK_JSON {...}" with the exact figures ingest.py reads.

local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  -- init runs in each thread's own Lua state: the thread count comes as an argument.
  local file = args[1]
  target_path = args[2] or "/webhooks/kapso"
  local nthreads = tonumber(args[3] or "1")
  local f = assert(io.open(file, "rb"))
  local data = f:read("*a")
  f:close()
  items = {}
  local pos, i, size = 1, 0, #data
  while pos <= size do
    local nl = data:find("\n", pos, true)
    local event, key, sig, len = data:sub(pos, nl - 1):match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(%d+)$")
    len = tonumber(len)
    if i % nthreads == tid - 1 then
      items[#items + 1] = { event, key, sig, data:sub(nl + 1, nl + len) }
    end
    pos = nl + len + 2
    i = i + 1
  end
  nitems = #items
  idx = 0
  sent = 0
end

function request()
  idx = idx + 1
  if idx > nitems then
    idx = 1
  end
  sent = sent + 1
  local it = items[idx]
  return wrk.format("POST", target_path, {
    ["Content-Type"] = "application/json",
    ["X-Webhook-Event"] = it[1],
    ["X-Webhook-Payload-Version"] = "v2",
    ["X-Idempotency-Key"] = it[2],
    ["X-Webhook-Signature"] = it[3],
  }, it[4])
end

function done(summary, latency, requests)
  local sent_total, distinct = 0, 0
  for _, t in ipairs(threads) do
    local s, n = t:get("sent") or 0, t:get("nitems") or 0
    sent_total = sent_total + s
    distinct = distinct + math.min(s, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"distinct_sent":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f}\n',
    summary.duration, summary.requests, summary.bytes, sent_total, distinct,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end

-- wrk script for the throughput benchmarks (bench/ingest.py, bench/sarah.py): replays pre-built
-- POST requests read from a file, so a run sends exactly the bodies and headers generated in
-- Python without wrk or Python building them while the server is measured.
--
--   [WRK_SORT_ANSWERS=1] wrk -t N ... -s bench/wrk_replay.lua URL -- REQUESTS_FILE PATH N
--
-- REQUESTS_FILE (bench/_wrk.py, write_requests) holds records of
-- "body-length \t Name: value \t Name: value ... \n", followed by exactly body-length bytes of body
-- and one "\n". With several wrk threads each takes every n-th record, so no two threads send the
-- same request; a thread that runs out starts over (those repeats are duplicates: done() reports
-- how many distinct requests were sent).
--
-- With WRK_SORT_ANSWERS=1 in the environment, response() sorts every answer (200 with
-- "sync":true, 200 with "sync":false, other 2xx, 429, other statuses: Sarah's state API) and done()
-- reports those counts under "answers". Without it the script defines no response(), so wrk does
-- not collect headers and bodies, and the load generator costs what it cost before.
--
-- done() prints one line "WRK_JSON {...}" with the exact figures bench/_wrk.py reads.

local sort_answers = os.getenv("WRK_SORT_ANSWERS") == "1"
local answer_kinds = { "ok_sync", "ok_nosync", "ok_other", "too_many", "other_status" }
local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local function parse_headers(line)
  local headers = {}
  for field in line:gmatch("\t([^\t]+)") do
    local name, value = field:match("^([^:]+): (.*)$")
    headers[name] = value
  end
  return headers
end

function init(args)
  -- init runs in each thread's own Lua state: the thread count comes as an argument.
  local file = args[1]
  target_path = args[2] or "/"
  local nthreads = tonumber(args[3] or "1")
  local f = assert(io.open(file, "rb"))
  local data = f:read("*a")
  f:close()
  items = {}
  local pos, i, size = 1, 0, #data
  while pos <= size do
    local nl = data:find("\n", pos, true)
    local line = data:sub(pos, nl - 1)
    local len = tonumber(line:match("^(%d+)"))
    if i % nthreads == tid - 1 then
      items[#items + 1] = { parse_headers(line), data:sub(nl + 1, nl + len) }
    end
    pos = nl + len + 2
    i = i + 1
  end
  nitems = #items
  idx = 0
  sent = 0
  ok_sync, ok_nosync, ok_other, too_many, other_status = 0, 0, 0, 0, 0
end

function request()
  idx = idx + 1
  if idx > nitems then
    idx = 1
  end
  sent = sent + 1
  local it = items[idx]
  return wrk.format("POST", target_path, it[1], it[2])
end

if sort_answers then
  function response(status, headers, body)
    if status == 200 then
      if body:find('"sync":true', 1, true) then
        ok_sync = ok_sync + 1
      elseif body:find('"sync":false', 1, true) then
        ok_nosync = ok_nosync + 1
      else
        ok_other = ok_other + 1
      end
    elseif status >= 200 and status < 300 then
      ok_other = ok_other + 1
    elseif status == 429 then
      too_many = too_many + 1
    else
      other_status = other_status + 1
    end
  end
end

function done(summary, latency, requests)
  local sent_total, distinct = 0, 0
  local counts = {}
  for _, k in ipairs(answer_kinds) do
    counts[k] = 0
  end
  for _, t in ipairs(threads) do
    local s, n = t:get("sent") or 0, t:get("nitems") or 0
    sent_total = sent_total + s
    distinct = distinct + math.min(s, n)
    for _, k in ipairs(answer_kinds) do
      counts[k] = counts[k] + (t:get(k) or 0)
    end
  end
  local answers = ""
  if sort_answers then
    local parts = {}
    for _, k in ipairs(answer_kinds) do
      parts[#parts + 1] = string.format('"%s":%d', k, counts[k])
    end
    answers = ',"answers":{' .. table.concat(parts, ",") .. "}"
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"distinct_sent":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f%s}\n',
    summary.duration, summary.requests, summary.bytes, sent_total, distinct,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, answers))
end

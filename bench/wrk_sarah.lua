-- wrk script for bench/sarah.py: replays pre-generated POST /sarah/state bodies with the
-- workspace's Sarah key, and counts what the server answered.
--
--   wrk -t N ... -s bench/wrk_sarah.lua URL -- POSTS_FILE PATH N SARAH_KEY
--
-- POSTS_FILE holds records of "label \t body-length \n", followed by exactly body-length bytes of
-- JSON body and one "\n". With several wrk threads each takes every n-th record, so no two threads
-- send the same post; a thread that runs out starts over (repeats: done() reports how many
-- distinct posts were sent). response() sorts every answer: 200 with "sync":true, 200 with
-- "sync":false, other 2xx, 429, other statuses. done() prints one line "WRK_JSON {...}".

local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  -- init runs in each thread's own Lua state: the thread count and key come as arguments.
  local file = args[1]
  target_path = args[2] or "/sarah/state"
  local nthreads = tonumber(args[3] or "1")
  auth = "Bearer " .. (args[4] or "")
  local f = assert(io.open(file, "rb"))
  local data = f:read("*a")
  f:close()
  items = {}
  local pos, i, size = 1, 0, #data
  while pos <= size do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1):match("\t(%d+)$"))
    if i % nthreads == tid - 1 then
      items[#items + 1] = data:sub(nl + 1, nl + len)
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
  return wrk.format("POST", target_path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = auth,
  }, items[idx])
end

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

function done(summary, latency, requests)
  local sent_total, distinct = 0, 0
  local c = { ok_sync = 0, ok_nosync = 0, ok_other = 0, too_many = 0, other_status = 0 }
  for _, t in ipairs(threads) do
    local s, n = t:get("sent") or 0, t:get("nitems") or 0
    sent_total = sent_total + s
    distinct = distinct + math.min(s, n)
    for k, v in pairs(c) do
      c[k] = v + (t:get(k) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"distinct_sent":%d,' ..
    '"ok_sync":%d,"ok_nosync":%d,"ok_other":%d,"too_many":%d,"other_status":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f}\n',
    summary.duration, summary.requests, summary.bytes, sent_total, distinct,
    c.ok_sync, c.ok_nosync, c.ok_other, c.too_many, c.other_status,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end

"""The live pipeline: how a committed change reaches every open board, and what it says meanwhile.

    writer (webhook, bot, person, job)
      │ one transaction: the change + a change_events row (outbox.add_change)
      ▼ commit
    broker.publish ──▶ Redis `ws:<id>` ──▶ every process's ONE subscription ─┐
      │  (Redis down: delivered in this process; the others read the log)    │
      │                                                                      ▼
    change_events ─────── tail.LogTail (short poll while Redis is down) ──▶ broker.Hub
      (the truth)                                                            │ each event once
                                                                             ▼
                                    fanout.Fanout: a burst per workspace, each lead rendered once
                                    per (language, time zone) as SSE bytes (render.LiveRenderer)
                                                                             │ the same bytes
                                                                             ▼
                                    connection.Connection per browser, its backlog.Backlog: newest
                                    row per lead, stats once, too far behind → one `refresh`
                                                                             │ one callback writes
                                                                             │ all that wait
                                                                             ▼
                                    stream.EventStreamResponse: GET /events, the server's own send
                                                                             │
                                                                             ▼
    browser: htmx sse extension + board.js place the row, flash it; `status` events set the
    indicator: live / catching-up (more than 1 s behind) / delayed (other processes unheard)

A browser that connects says the last event it saw; stream.replay sends the newest row of each
lead changed since, or a refresh past the replay limit. pipeline.LivePipeline wires one process.
"""

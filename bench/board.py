"""The board at scale: 100,000 leads in one workspace, every filter, sort and search, the contact
page of a lead with 5,000 timeline items, and the streamed CSV export.

    .venv/bin/python bench/board.py [--leads 100000] [--reps 50] [--keep] [--db PATH] [--plans]
                                    [--warmup N] [--seed N] [--no-http]

1. Seed (skipped with --db PATH, which reuses a database this script seeded, e.g. one kept with
   --keep): a fresh SQLite file migrated with app.migrate.upgrade; the workspace and six people
   (one admin, five agents) through the app's own services; then the leads with executemany in
   batches through sqlite3 (values stored exactly as SQLAlchemy stores them, search_text from
   app.leads.services.search_text_for; the contacts indexes and triggers are dropped for the load
   and rebuilt from their own CREATE statements, the search index in one pass, so the schema is
   the migrated one), and one lead with 5,000 timeline items (3,500 messages in and out, 1,000
   notes, 500 lead changes). Timed.
2. In-process (precise): the functions the controllers call (board_rows for every filter x every
   sort, pipeline_columns, board_stats, facet_counts, searches, timeline pages 1 and 2, lead_row,
   and the whole set of queries BoardController.board / LeadController.show run, with the facet
   counts the controllers have from BoardCache), each as one Database.read like the controllers
   make it, after warm-up: --reps timed calls, p50/p95 of wall time, and the p50 of the
   process's CPU time (which other load on the machine does not inflate).
3. Over HTTP: `leadboard serve` on the same file (DEMO_WORKSPACE=0), signed in with httpx like a
   browser. The board's htmx fragment (HX-Request, HX-Target: board-view) for the same cases, the
   lead page, and GET /healthz as the baseline. Reported: client time p50/p95, "server time"
   = client time - the p50 of GET /healthz in the same run (the loopback + HTTP + middleware
   floor), and the server's CPU per request (from /proc, averaged over the reps). A case repeats
   one URL, so from its second request the rows come from the row cache (app.templating
   LeadPartial), as they do for a team re-fetching its board after live events; "fresh pages"
   then walks --reps pages by each page's Next link, rows no request showed before, so every
   row partial renders (the cold path).
4. GET /export.csv: every lead, streamed; rows/s, and the server's RSS (VmRSS sampled while it
   streams, VmHWM) before and after, to show memory stays flat.

Targets (reported PASS/FAIL, never asserted): board first page p95 <= 30 ms server time for
every filter and sort; search p95 <= 100 ms; contact page (5,000 items) p95 <= 50 ms.
Cases that miss a target get their EXPLAIN QUERY PLAN printed (--plans: for every case).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import (
    LEADBOARD_BIN,
    Child,
    command_line,
    free_port,
    install_sigterm_handler,
    percentile,
    wait_http,
)
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import create_user
from app.db import Database
from app.ingest.samples import FIRST_NAMES, INBOUND_TEXTS, LAST_NAMES, OUTBOUND_TEXTS
from app.leads.board import (
    STATUSES,
    TEMPERATURES,
    BoardQuery,
    Facets,
    board_rows,
    facet_counts,
    pipeline_columns,
)
from app.leads.cache import FACET_COLUMNS, today_start
from app.leads.queries import board_stats, lead_details, lead_row
from app.leads.services import preview_of, search_text_for
from app.leads.timeline import timeline
from app.live.outbox import latest_change_id
from app.migrate import upgrade
from app.sarah.rules import STATE_TO_STATUS

TARGETS = {"board": 30.0, "search": 100.0, "contact": 50.0}
WORKSPACE_NAME = "Bench Board"
WORKSPACE_PHONE_ID = "bench-board-phone-number-id"
ADMIN_EMAIL = "bench-admin@leadboard.local"
ADMIN_PASSWORD = "bench-board-password"
AGENTS = ["Rizky Pratama", "Ayu Lestari", "Dimas Saputra", "Nadia Putri", "Bagus Hidayat"]
BIG_ITEMS = {"messages": 3500, "notes": 1000, "changes": 500}
BATCH = 5000
HX_BOARD = {"HX-Request": "true", "HX-Target": "board-view"}
HX_TIMELINE = {"HX-Request": "true", "HX-Target": "timeline-more"}

# -- realistic values ------------------------------------------------------------------------------
MORE_FIRST = [
    "Ahmad", "Muhammad", "Nurul", "Rizki", "Ayu", "Dian", "Wahyu", "Sari", "Adi", "Fitri",
    "Agung", "Ratna", "Yusuf", "Intan", "Teguh", "Mega", "Arif", "Novi", "Bambang", "Kartika",
    "Irfan", "Desi", "Gilang", "Anisa",
]  # fmt: skip
MORE_LAST = [
    "Purnomo", "Utami", "Suryadi", "Handayani", "Simanjuntak", "Nasution", "Halim", "Tanjung",
    "Maulana", "Ramadhan", "Firmansyah", "Puspita", "Sihombing", "Daulay",
]  # fmt: skip
FIRST = sorted(set(FIRST_NAMES) | set(MORE_FIRST))
LAST = sorted(set(LAST_NAMES) | set(MORE_LAST))
BUSINESS_TYPES = [
    "katering", "laundry kiloan", "warung makan", "toko kelontong", "bengkel motor",
    "salon kecantikan", "konveksi", "toko bangunan", "apotek", "kedai kopi", "bakery",
    "florist", "percetakan", "cuci mobil", "toko online fashion", "distributor sembako",
    "klinik gigi", "les privat", "travel umroh", "agen properti", "kos-kosan",
    "peternakan ayam", "toko HP", "rental mobil", "frozen food", "catering sehat",
    "barbershop", "studio foto", "toko oleh-oleh", "ekspedisi",
]  # fmt: skip
LOCATIONS = [
    "Jakarta Selatan", "Jakarta Barat", "Jakarta Timur", "Jakarta Utara", "Jakarta Pusat",
    "Bekasi", "Depok", "Tangerang", "Tangerang Selatan", "Bogor", "Bandung", "Cimahi",
    "Cirebon", "Semarang", "Solo", "Yogyakarta", "Surabaya", "Sidoarjo", "Malang", "Denpasar",
    "Medan", "Palembang", "Pekanbaru", "Padang", "Batam", "Bandar Lampung", "Pontianak",
    "Banjarmasin", "Balikpapan", "Samarinda", "Makassar", "Manado", "Kupang", "Mataram",
    "Jambi", "Bengkulu", "Serang", "Karawang", "Purwokerto", "Tasikmalaya",
]  # fmt: skip
PAIN_POINTS = [
    "omzet turun", "pencatatan manual", "stok sering selisih", "susah cari karyawan",
    "pelanggan lama tidak kembali", "promosi kurang efektif", "arus kas tidak jelas",
    "pesanan WhatsApp berantakan", "ongkos kirim mahal", "modal terbatas",
]  # fmt: skip
PHONE_PREFIXES = ["812", "813", "821", "822", "852", "853", "857", "878", "896", "838"]
STATUS_WEIGHTS = {"new": 40, "qualified": 25, "contacted": 18, "converted": 7, "archived": 10}
TEMPERATURE_WEIGHTS = {None: 25, "hot": 8, "warm": 20, "lukewarm": 22, "cold": 25}
SCORE_RANGES = {"hot": (75, 100), "warm": (55, 80), "lukewarm": (35, 60), "cold": (0, 40)}
PHASES_BY_STATUS: dict[str, list[str]] = {}
for _phase, _status in STATE_TO_STATUS.items():
    PHASES_BY_STATUS.setdefault(_status, []).append(_phase)
NOTE_TEXTS = [
    "Sudah ditelepon, minta dikirim brosur lewat email.",
    "Tertarik paket bulanan, tunggu persetujuan suami.",
    "Minta jadwal demo hari Kamis sore.",
    "Follow up minggu depan, masih bandingkan dengan vendor lain.",
    "Budget terbatas, tawarkan cicilan 6x.",
    "Lead quiet for 3 hours after our last reply.",
    "Sudah transfer DP, menunggu konfirmasi finance.",
]
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _ts(epoch: float | None) -> str | None:
    """A UTC instant stored exactly as SQLAlchemy stores UTCDateTime on SQLite."""
    if epoch is None:
        return None
    return (_NAIVE_EPOCH + timedelta(seconds=epoch)).isoformat(" ", "microseconds")


def _weighted(rng: random.Random, weights: dict[Any, int], k: int) -> list[Any]:
    return rng.choices(list(weights), weights=list(weights.values()), k=k)


def _zipf(values: Sequence[str], rng: random.Random, k: int, s: float = 0.9) -> list[str]:
    """A few common values and a long tail, like real business types and cities."""
    weights = [1.0 / (i + 1) ** s for i in range(len(values))]
    return rng.choices(list(values), weights=weights, k=k)


# -- seeding ---------------------------------------------------------------------------------------
@dataclass
class Seeded:
    """What the measurements need to know about the database."""

    db_path: Path
    workspace_id: int
    admin_id: int
    big_lead_id: int
    small_lead_id: int
    leads: int
    timeline_items: int
    sample_phone: str
    seed_seconds: dict[str, float] = field(default_factory=dict)


async def _create_accounts(url: str) -> tuple[int, int, list[int]]:
    db = Database(url)
    try:
        async with db.write() as session:
            ws = await _create_workspace(session)
            admin = await create_user(
                session,
                email=ADMIN_EMAIL,
                password=ADMIN_PASSWORD,
                workspace=ws,
                role="admin",
                name="Bench Admin",
            )
            agents = []
            for name in AGENTS:
                email = name.lower().replace(" ", ".") + "@leadboard.local"
                agent = await create_user(
                    session, email=email, password=ADMIN_PASSWORD, workspace=ws, role="agent",
                    name=name,
                )  # fmt: skip
                agents.append(int(agent.id or 0))
            assert ws.id is not None and admin.id is not None
            return ws.id, admin.id, agents
    finally:
        await db.dispose()


async def _create_workspace(session: AsyncSession) -> Any:
    from app.workspaces.services import create_workspace

    created = await create_workspace(
        session, name=WORKSPACE_NAME, kapso_phone_number_id=WORKSPACE_PHONE_ID
    )
    return created.workspace


def _words(text: str) -> list[str]:
    return text.split()


CONTACT_COLUMNS = _words("""
    workspace_id phone_e164 username name profile_name status temperature score phase
    business_type location business_duration team_size pain_points goals priority urgency_level
    language owner_user_id hot_since stale_flagged_at needs_reply search_text status_source
    status_changed_at status_changed_by last_message_preview last_message_direction message_count
    last_activity_at last_inbound_at last_contact_at created_at updated_at
""")
MESSAGE_COLUMNS = _words("""
    workspace_id contact_id wamid direction message_type body status status_at error origin
    has_media media_url sent_at created_at
""")
NOTE_COLUMNS = _words(
    "workspace_id contact_id author_kind author_name user_id kind body created_at"
)
CHANGE_COLUMNS = _words("workspace_id contact_id field old_value new_value source actor created_at")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _contact_rows(
    n: int, ws: int, owners: list[int], admin: int, now: float, rng: random.Random
) -> tuple[list[tuple[Any, ...]], str]:
    """n leads sorted by creation (ids grow with created_at, as in real life); the last one made
    is the big lead (oldest). Returns the rows and the big lead's phone."""
    day = 86400.0
    created = sorted(now - rng.random() * 90 * day for _ in range(n - 1))
    created.insert(0, now - 90 * day - 3600)  # the big lead: the oldest, still the most active
    numbers = rng.sample(range(10_000_000, 100_000_000), n)
    statuses = _weighted(rng, STATUS_WEIGHTS, n)
    temps = _weighted(rng, TEMPERATURE_WEIGHTS, n)
    businesses = _zipf(BUSINESS_TYPES, rng, n)
    locations = _zipf(LOCATIONS, rng, n)
    owner_weights: dict[int | None, int] = {None: 45, admin: 15}
    owner_weights.update({o: 8 for o in owners})
    owner_ids = _weighted(rng, owner_weights, n)
    rows: list[tuple[Any, ...]] = []
    big_phone = ""
    for i in range(n):
        c = created[i]
        since = max(c, now - 60 * day)
        activity = since + rng.random() * (now - since)
        if i == 0:
            activity = now - 300.0
        phone = f"+62{rng.choice(PHONE_PREFIXES)}{numbers[i]}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        roll = rng.random()
        profile = (
            f"{first} {last}" if roll < 0.55 else first if roll < 0.75
            else f"{first.lower()}_{last.lower()}" if roll < 0.85 else None
        )  # fmt: skip
        name = f"{first} {last}" if rng.random() < 0.6 else None
        username = f"{first.lower()}{rng.randrange(10, 9999)}" if rng.random() < 0.05 else None
        status = statuses[i]
        temp = temps[i]
        score = rng.randint(*SCORE_RANGES[temp]) if temp else None
        if temp is None and rng.random() < 0.05:
            score = rng.randint(0, 30)  # scored once, temperature never sent
        if rng.random() < 0.15:
            phase = None
        elif status == "archived":
            phase = rng.choice(list(STATE_TO_STATUS))
        else:
            phase = rng.choice(PHASES_BY_STATUS[status])
        business = businesses[i] if rng.random() < 0.7 else None
        location = locations[i] if rng.random() < 0.65 else None
        pains = rng.sample(PAIN_POINTS, rng.randint(1, 3)) if rng.random() < 0.45 else None
        needs_reply = rng.random() < 0.18
        count = 3500 if i == 0 else max(1, int(rng.expovariate(1 / 14)))
        if needs_reply:
            last_in: float | None = activity
            last_out = activity - rng.random() * 3 * day if rng.random() < 0.8 else None
            direction, preview = "inbound", rng.choice(INBOUND_TEXTS)
        else:
            last_out = activity
            last_in = activity - rng.random() * 2 * day
            direction, preview = "outbound", rng.choice(OUTBOUND_TEXTS)
        hot_since = activity - rng.random() * day if temp == "hot" and rng.random() < 0.5 else None
        stale: float | None = None
        if rng.random() < 0.06:
            if rng.random() < 0.8 and activity < now - 4 * 3600:
                stale = activity + 3600 + rng.random() * 2 * 3600  # still quiet: stale
            elif activity - c > 2 * day:
                stale = activity - day - rng.random() * (activity - c - 2 * day)  # woke up since
        source = "human" if rng.random() < 0.15 else "bot" if phase else "system"
        changed_at = c + rng.random() * (activity - c)
        changed_by = (
            "Bench Admin" if source == "human" else "sarah-bot" if source == "bot" else None
        )
        owner = owner_ids[i]
        rows.append(
            (
                ws, phone, username, name, profile, status, temp, score, phase, business,
                location,
                rng.choice(["< 1 tahun", "1-3 tahun", "3-5 tahun", "> 5 tahun"]) if business
                else None,
                rng.choice(["sendiri", "2-5 orang", "6-20 orang", "> 20 orang"]) if business
                else None,
                json.dumps(pains) if pains else None,
                "naikkan omzet 30% tahun ini" if pains else None,
                rng.choice(["harga", "kualitas", "kecepatan"]) if pains else None,
                rng.choice(["rendah", "sedang", "tinggi"]) if pains else None,
                "en" if rng.random() < 0.05 else "id",
                owner,
                _ts(hot_since), _ts(stale), 1 if needs_reply else 0,
                search_text_for(
                    name=name, profile_name=profile, username=username, business_type=business,
                    location=location, phone_e164=phone,
                ),
                source, _ts(changed_at), changed_by, preview_of(preview), direction, count,
                _ts(activity), _ts(last_in), _ts(last_out), _ts(c), _ts(activity),
            )
        )  # fmt: skip
        if i == 0:
            big_phone = phone
    return rows, big_phone


def _big_lead_rows(
    ws: int, contact: int, users: list[tuple[int, str]], start: float, end: float,
    rng: random.Random,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:  # fmt: skip
    span = end - start
    messages = []
    times = sorted(start + rng.random() * span for _ in range(BIG_ITEMS["messages"] - 1))
    times.append(end)
    for k, at in enumerate(times):
        inbound = rng.random() < 0.55 and k != len(times) - 1
        kind = rng.choices(["text", "image", "document"], weights=[92, 5, 3])[0]
        media = kind != "text"
        if inbound:
            body, direction, status, error, origin = (
                rng.choice(INBOUND_TEXTS),
                "inbound",
                "received",
                None,
                None,
            )
        else:
            body, direction = rng.choice(OUTBOUND_TEXTS), "outbound"
            status = rng.choices(["read", "delivered", "sent", "failed"], [60, 25, 10, 5])[0]
            error = "131047: Re-engagement message" if status == "failed" else None
            origin = "business_app" if rng.random() < 0.3 else "api"
        messages.append(
            (
                ws, contact, f"wamid.BENCH{uuid.UUID(int=rng.getrandbits(128)).hex.upper()}",
                direction, kind, "" if media and rng.random() < 0.5 else body, status,
                _ts(at + rng.random() * 60), error, origin, 1 if media else 0,
                f"https://media.example/{k}.jpg" if media else None, _ts(at), _ts(at + 0.2),
            )
        )  # fmt: skip
    notes = []
    for _ in range(BIG_ITEMS["notes"]):
        at = start + rng.random() * span
        roll = rng.random()
        if roll < 0.6:
            uid, uname = rng.choice(users)
            author: tuple[str, str, int | None, str] = ("user", uname, uid, "note")
        elif roll < 0.9:
            author = ("bot", "sarah-bot", None, "note")
        else:
            author = ("system", "reconciliation", None, "stale")
        notes.append((ws, contact, *author, rng.choice(NOTE_TEXTS), _ts(at)))
    changes = []
    for _ in range(BIG_ITEMS["changes"]):
        at = start + rng.random() * span
        fld = rng.choices(["status", "score", "temperature"], [30, 40, 30])[0]
        if fld == "status":
            old, new = rng.sample(list(STATUSES), 2)
        elif fld == "score":
            old, new = str(rng.randint(0, 100)), str(rng.randint(0, 100))
        else:
            old, new = rng.sample(list(TEMPERATURES), 2)
        source = rng.choices(["bot", "human", "system"], [60, 30, 10])[0]
        actor = {"bot": "sarah-bot", "human": rng.choice(users)[1], "system": "reconciliation"}
        changes.append((ws, contact, fld, old, new, source, actor[source], _ts(at)))
    changes.sort(key=lambda r: str(r[-1]))  # ids grow with time, as the app writes them
    notes.sort(key=lambda r: str(r[-1]))
    return messages, notes, changes


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), BATCH):
        conn.executemany(sql, rows[i : i + BATCH])


def seed(db_path: Path, leads: int, seed_value: int) -> Seeded:
    url = f"sqlite+aiosqlite:///{db_path}"
    t0 = time.perf_counter()
    upgrade(url)
    t1 = time.perf_counter()
    ws, admin, agents = asyncio.run(_create_accounts(url))
    t2 = time.perf_counter()
    rng = random.Random(seed_value)
    now = time.time()
    rows, big_phone = _contact_rows(leads, ws, agents, admin, now, rng)
    t3 = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("BEGIN")
        # Bulk load: drop the contacts table's secondary indexes and triggers, insert, then
        # rebuild them from their exact CREATE statements (one sorted build each: ~2x faster
        # than keeping 14 indexes up to date row by row) and the search index in one pass
        # (the triggers would feed it row by row: 4x slower). The schema ends up identical
        # to the migrated one.
        indexes = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'contacts' AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _sql in indexes:
            conn.execute(f'DROP {kind.upper()} "{name}"')
        _executemany(conn, _insert_sql("contacts", CONTACT_COLUMNS), rows)
        for _kind, _name, sql in indexes:
            conn.execute(sql)
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'contacts_fts'").fetchone():
            conn.execute("INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')")
        conn.execute("COMMIT")
        t4 = time.perf_counter()
        big_id, created_raw, activity_raw = conn.execute(
            "SELECT id, created_at, last_activity_at FROM contacts "
            "WHERE workspace_id = ? AND phone_e164 = ?",
            (ws, big_phone),
        ).fetchone()
        people = [(admin, "Bench Admin"), *zip(agents, AGENTS, strict=True)]
        start = _epoch(created_raw)
        messages, notes, changes = _big_lead_rows(
            ws, big_id, people, start, _epoch(activity_raw), rng
        )
        conn.execute("BEGIN")
        _executemany(conn, _insert_sql("messages", MESSAGE_COLUMNS), messages)
        _executemany(conn, _insert_sql("notes", NOTE_COLUMNS), notes)
        _executemany(conn, _insert_sql("lead_changes", CHANGE_COLUMNS), changes)
        conn.execute("COMMIT")
        t5 = time.perf_counter()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    t6 = time.perf_counter()
    seeded = discover(db_path)
    seeded.seed_seconds = {
        "migrate": t1 - t0,
        "workspace+users": t2 - t1,
        "generate leads": t3 - t2,
        "insert leads": t4 - t3,
        "timeline (generate+insert)": t5 - t4,
        "checkpoint": t6 - t5,
        "total": t6 - t0,
    }
    return seeded


def _epoch(raw: str) -> float:
    return (datetime.fromisoformat(raw) - _NAIVE_EPOCH).total_seconds()


def discover(db_path: Path) -> Seeded:
    """Find the bench workspace, its admin and the big lead in a seeded database."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT id FROM workspaces WHERE kapso_phone_number_id = ?", (WORKSPACE_PHONE_ID,)
        ).fetchone()
        if found is None:
            raise SystemExit(f"{db_path} holds no {WORKSPACE_NAME!r} workspace: seed it first")
        ws = int(found[0])
        admin = int(
            conn.execute("SELECT id FROM users WHERE email = ?", (ADMIN_EMAIL,)).fetchone()[0]
        )
        big, items = conn.execute(
            "SELECT contact_id, count(*) FROM messages WHERE workspace_id = ? "
            "GROUP BY contact_id ORDER BY 2 DESC LIMIT 1",
            (ws,),
        ).fetchone()
        items += conn.execute("SELECT count(*) FROM notes WHERE contact_id = ?", (big,)).fetchone()[
            0
        ]
        items += conn.execute(
            "SELECT count(*) FROM lead_changes WHERE contact_id = ?", (big,)
        ).fetchone()[0]
        small = conn.execute(
            "SELECT max(id) FROM contacts WHERE workspace_id = ?", (ws,)
        ).fetchone()[0]
        leads = conn.execute(
            "SELECT count(*) FROM contacts WHERE workspace_id = ?", (ws,)
        ).fetchone()[0]
        phone = conn.execute(
            "SELECT phone_e164 FROM contacts WHERE workspace_id = ? AND id = ?", (ws, small // 2)
        ).fetchone()
    finally:
        conn.close()
    return Seeded(
        db_path=db_path,
        workspace_id=ws,
        admin_id=admin,
        big_lead_id=int(big),
        small_lead_id=int(small),
        leads=int(leads),
        timeline_items=int(items),
        sample_phone=str(phone[0]) if phone else "+6281234567890",
    )


# -- cases -----------------------------------------------------------------------------------------
Runner = Callable[[Connection], int]


@dataclass
class Case:
    key: str  # what the tables show
    group: str  # board | search | contact | other
    run: Runner  # in-process: the controller's calls; returns the rows it produced
    path: str | None = None  # over HTTP
    headers: dict[str, str] = field(default_factory=dict)
    inproc: list[float] = field(default_factory=list)
    inproc_cpu: list[float] = field(default_factory=list)  # CPU time of the process (all threads)
    http: list[float] = field(default_factory=list)
    cpu_ms: float = float("nan")
    rows: int = 0
    plans: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.group)


def _facet_values(db_path: Path, ws: int, column: str) -> tuple[str, str]:
    """The most and the least common value of a column (they bracket the cost)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            f"SELECT {column}, count(*) FROM contacts WHERE workspace_id = ? AND {column} IS NOT "
            f"NULL GROUP BY {column} ORDER BY 2 DESC",
            (ws,),
        ).fetchall()
    finally:
        conn.close()
    return str(rows[0][0]), str(rows[-1][0])


def _board_filters(s: Seeded) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("all", {})]
    out += [(f"status={v}", {"status": v}) for v in STATUSES]
    out += [(f"temperature={v}", {"temperature": v}) for v in TEMPERATURES]
    for column in ("phase", "business_type", "location"):
        common, rare = _facet_values(s.db_path, s.workspace_id, column)
        out.append((f"{column}={common} (most)", {column: common}))
        out.append((f"{column}={rare} (least)", {column: rare}))
    out += [
        ("owner=me", {"owner": "me"}),
        ("owner=none", {"owner": "none"}),
        ("needs_reply", {"needs_reply": True}),
        ("stale", {"stale": True}),
    ]
    return out


def _phone_query(phone_e164: str) -> str:
    """A lead's number as people type it: 0812-3456-7890."""
    local = "0" + phone_e164.removeprefix("+62")
    return f"{local[:4]}-{local[4:8]}-{local[8:]}"


SEARCHES = [
    ("name: budi", "budi"),
    ("name: santoso", "santoso"),
    ("name: dewi lest", "dewi lest"),
    ("name: handayani", "handayani"),
    ("phone: 0812 3456", "0812 3456"),
    ("phone: +62 857-12", "+62 857-12"),
    ("phone: 0878", "0878"),
    ("business: katering", "katering"),
    ("business: studio foto", "studio foto"),
    ("location: bekasi", "bekasi"),
    ("no match: zzzz", "zzzz"),
]


async def first_reads(s: Seeded) -> tuple[str, Facets]:
    """The cursor the lead page's "Older" button carries (end of the first page), and the
    workspace's facet counts (what BoardCache holds for the controllers)."""
    db = Database(f"sqlite+aiosqlite:///{s.db_path}")
    ws = s.workspace_id
    try:
        page = await db.read(lambda conn: timeline(conn, ws, s.big_lead_id))
        facets = await db.read(lambda conn: {c: facet_counts(conn, ws, c) for c in FACET_COLUMNS})
    finally:
        await db.dispose()
    return page.next_cursor or "", facets


def build_cases(s: Seeded, older_cursor: str, facets: Facets) -> list[Case]:
    """`facets`: the workspace's facet counts, which the controllers have from BoardCache."""
    ws, me = s.workspace_id, s.admin_id
    cases: list[Case] = []

    def board(key: str, query: BoardQuery, group: str = "board") -> None:
        def run(conn: Connection) -> int:
            return len(board_rows(conn, ws, query, me, facets).rows)

        cases.append(Case(key, group, run, query.url("/"), HX_BOARD))

    for sort in ("activity", "score", "newest"):
        for name, params in _board_filters(s):
            board(f"{name} sort={sort}", BoardQuery(sort=sort, **params))

    def pipeline(conn: Connection) -> int:
        query = BoardQuery(view="pipeline")
        columns = pipeline_columns(conn, ws, query, me, facets=facets)
        return sum(len(c.cards) for c in columns)

    cases.append(Case("pipeline (5 columns)", "board", pipeline, "/?view=pipeline", HX_BOARD))

    def board_view(conn: Connection) -> int:
        """What BoardController.board reads for the default view (stats, facets and the
        workspace's people are cached)."""
        latest_change_id(conn, ws)
        return len(board_rows(conn, ws, BoardQuery(), me, facets).rows)

    cases.append(Case("board full page GET / (its queries)", "board", board_view, "/", {}))

    searches = [*SEARCHES, ("phone: one lead's full number", _phone_query(s.sample_phone))]
    for label, q in searches:
        board(f"search {label}", BoardQuery(q=q), "search")
    board("search budi + status=new", BoardQuery(q="budi", status="new"), "search")

    def tl_first(conn: Connection) -> int:
        return len(timeline(conn, ws, s.big_lead_id).items)

    def tl_second(conn: Connection) -> int:
        return len(timeline(conn, ws, s.big_lead_id, cursor=older_cursor).items)

    def row(conn: Connection) -> int:
        return int(lead_row(conn, ws, s.big_lead_id) is not None)

    def contact_page(lead_id: int) -> Runner:
        def run(conn: Connection) -> int:
            """Everything LeadController.show reads (the workspace's people are cached)."""
            lead_row(conn, ws, lead_id)
            lead_details(conn, ws, lead_id)
            items = timeline(conn, ws, lead_id)
            latest_change_id(conn, ws)
            return len(items.items)

        return run

    big = f"/leads/{s.big_lead_id}"
    cases += [
        Case(f"timeline page 1 ({s.timeline_items:,} items)", "contact", tl_first),
        Case("timeline page 2 (Older button)", "contact", tl_second,
             f"{big}?before={older_cursor}", HX_TIMELINE),
        Case("lead_row", "contact", row),
        Case(f"contact page queries ({s.timeline_items:,} items)", "contact",
             contact_page(s.big_lead_id), big, {}),
        Case("contact page queries (small lead)", "contact", contact_page(s.small_lead_id),
             f"/leads/{s.small_lead_id}", {}),
    ]  # fmt: skip

    def stats(conn: Connection) -> int:
        board_stats(conn, ws, today_start("Asia/Jakarta"))
        return 1

    cases.append(Case("board_stats (cached 2 s)", "other", stats))
    for column in FACET_COLUMNS:

        def facet(conn: Connection, column: str = column) -> int:
            return len(facet_counts(conn, ws, column))

        cases.append(Case(f"facet_counts {column} (cached 30 s)", "other", facet))
    return cases


# -- in-process ------------------------------------------------------------------------------------
class Capture:
    """The SQL a call sends (for EXPLAIN QUERY PLAN), from the engine's own event."""

    def __init__(self, db: Database) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(db.read_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if self.on and not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            self.statements.append((statement, params))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.on = True
        try:
            yield self.statements
        finally:
            self.on = False


_SELECT_LIST = re.compile(r"SELECT ((?:(?!\bFROM\b).){100,}?) FROM")


def short_sql(sql: str) -> str:
    """One line, long select lists folded, so WHERE and ORDER BY stay visible."""
    flat = " ".join(sql.split())
    return _SELECT_LIST.sub(lambda m: f"SELECT <{m.group(1).count(',') + 1} columns> FROM", flat)


def explain(db_path: Path, statements: list[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """EXPLAIN QUERY PLAN of each statement, with its parameters; repeats folded (xN)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    seen: dict[tuple[str, tuple[str, ...]], list[Any]] = {}  # -> [first params, count]
    try:
        for sql, params in statements:
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, tuple(params or ())).fetchall()
            depth: dict[int, int] = {0: 0}
            lines = []
            for ident, parent, _unused, detail in rows:
                depth[ident] = depth.get(parent, 0) + 1
                lines.append("  " * depth[ident] + str(detail))
            entry = seen.setdefault((short_sql(sql), tuple(lines)), [list(params or ()), 0])
            entry[1] += 1
    finally:
        conn.close()
    out = []
    for (sql, plan), (params, count) in seen.items():
        times = f" (x{count}, first params shown)" if count > 1 else ""
        out.append((f"{sql}  -- params {params}{times}", list(plan)))
    return out


async def measure_inprocess(s: Seeded, cases: list[Case], reps: int, warmup: int) -> None:
    db = Database(f"sqlite+aiosqlite:///{s.db_path}")
    capture = Capture(db)
    try:
        for n, case in enumerate(cases, 1):
            with capture.recording() as statements:
                case.rows = await db.read(case.run)
            case.plans = explain(s.db_path, statements)
            for _ in range(warmup):
                await db.read(case.run)
            samples, cpu = [], []
            for _ in range(reps):
                c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                await db.read(case.run)  # as the controllers read: one hand-off to a reader
                samples.append((time.perf_counter_ns() - t0) / 1e6)
                cpu.append((time.process_time_ns() - c0) / 1e6)
            case.inproc, case.inproc_cpu = samples, cpu
            print(
                f"  [{n:3d}/{len(cases)}] {case.key:<52} p50 {percentile(samples, 50):7.2f} ms"
                f"  p95 {percentile(samples, 95):7.2f} ms  cpu p50 {percentile(cpu, 50):7.2f} ms",
                flush=True,
            )
    finally:
        await db.dispose()


# -- HTTP ------------------------------------------------------------------------------------------
def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB from /proc (psutil is not in the venv)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


@contextlib.contextmanager
def board_server(workdir: Path, db_path: Path) -> Iterator[tuple[str, Child]]:
    """`leadboard serve` on the seeded file; SIGTERM on the way out, errors included."""
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path.resolve()}",
        "DEMO_WORKSPACE": "0",
        "REDIS_URL": "",
        "RECONCILE_INTERVAL_MINUTES": "100000",  # no reconciliation run during the benchmark
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [str(LEADBOARD_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = Child("leadboard", argv, workdir / f"server-{port}.log", env=env)
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(child, f"{base}/healthz")
        yield base, child
    finally:
        child.stop()


def sign_in(client: httpx.Client) -> None:
    """Like a browser: the form page sets the CSRF cookie, the form posts it back."""
    client.get("/login").raise_for_status()
    token = client.cookies.get("csrftoken", "")
    response = client.post(
        "/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "_csrf_token": token, "next": "/"},
    )
    if response.status_code != 303:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")


def sign_out(client: httpx.Client) -> None:
    """Leave no session behind in the server's session store."""
    token = client.cookies.get("csrftoken") or ""
    client.post("/logout", data={"_csrf_token": token})


def _timed_get(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter_ns()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter_ns() - t0) / 1e6
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} -> {response.status_code}: {response.text[:300]}")
    return elapsed, len(response.content)


def measure_healthz(client: httpx.Client, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        _timed_get(client, "/healthz", {})
    return [_timed_get(client, "/healthz", {})[0] for _ in range(reps)]


def measure_http(
    client: httpx.Client, child: Child, cases: list[Case], reps: int, warmup: int, floor: float
) -> None:
    http_cases = [c for c in cases if c.path]
    for n, case in enumerate(http_cases, 1):
        assert case.path is not None
        for _ in range(warmup):
            _timed_get(client, case.path, case.headers)
        cpu0 = child.cpu_seconds()
        case.http = [_timed_get(client, case.path, case.headers)[0] for _ in range(reps)]
        case.cpu_ms = (child.cpu_seconds() - cpu0) * 1000 / reps
        print(
            f"  [{n:3d}/{len(http_cases)}] {case.key:<52} client p50 "
            f"{percentile(case.http, 50):7.2f} p95 {percentile(case.http, 95):7.2f} ms"
            f"  server~ p95 {percentile(case.http, 95) - floor:7.2f} ms"
            f"  cpu {case.cpu_ms:6.2f} ms/req",
            flush=True,
        )


_NEXT_PAGE = re.compile(r'rel="next" href="([^"]+)"')


@dataclass
class FreshPages:
    """Pages reached by the "Next" link: rows no earlier request showed (rendered uncached)."""

    query: str
    http: list[float]
    cpu_ms: float


def measure_fresh_pages(
    client: httpx.Client, child: Child, query: BoardQuery, pages: int
) -> FreshPages:
    """Walk `pages` pages after the first, each by the previous page's "Next" link, as a person
    paging down the board: the cold path (every row partial rendered, nothing cached)."""
    path: str | None = query.url("/")
    response = client.get(path, headers=HX_BOARD)
    samples: list[float] = []
    cpu0 = child.cpu_seconds()
    for _ in range(pages):
        found = _NEXT_PAGE.search(response.text)
        if found is None:
            break
        path = html.unescape(found.group(1))
        t0 = time.perf_counter_ns()
        response = client.get(path, headers=HX_BOARD)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        response.raise_for_status()
    cpu_ms = (child.cpu_seconds() - cpu0) * 1000 / max(1, len(samples))
    return FreshPages(query.url("/"), samples, cpu_ms)


@dataclass
class ExportRun:
    rows: int
    bytes: int
    seconds: float
    ttfb: float
    rss_before_kb: int
    rss_peak_kb: int
    rss_after_kb: int
    hwm_before_kb: int
    hwm_after_kb: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def measure_export(client: httpx.Client, child: Child) -> ExportRun:
    before = _proc_status(child.pid)
    peak = [before.get("VmRSS", 0)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _proc_status(child.pid).get("VmRSS", 0))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    newlines = size = 0
    ttfb = float("nan")
    t0 = time.perf_counter()
    try:
        with client.stream("GET", "/export.csv", timeout=600) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET /export.csv -> {response.status_code}")
            for chunk in response.iter_bytes():
                if ttfb != ttfb:
                    ttfb = time.perf_counter() - t0
                newlines += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.perf_counter() - t0
    finally:
        done.set()
        sampler.join()
    time.sleep(0.2)
    after = _proc_status(child.pid)
    return ExportRun(
        rows=newlines - 1,  # the header line
        bytes=size,
        seconds=seconds,
        ttfb=ttfb,
        rss_before_kb=before.get("VmRSS", 0),
        rss_peak_kb=max(peak[0], after.get("VmRSS", 0)),
        rss_after_kb=after.get("VmRSS", 0),
        hwm_before_kb=before.get("VmHWM", 0),
        hwm_after_kb=after.get("VmHWM", 0),
    )


# -- report ----------------------------------------------------------------------------------------
def _verdict(p95: float, target: float | None) -> str:
    if target is None or p95 != p95:
        return "-"
    return "PASS" if p95 <= target else "FAIL"


def print_inprocess(cases: list[Case]) -> None:
    print()
    print(
        "In-process (the controllers' calls, warm caches; ms). cpu p50 = CPU time of the process "
        "(robust to other load)"
    )
    print(
        f"  {'case':<54} {'rows':>5} {'p50':>8} {'p95':>8} {'max':>8} {'cpu p50':>8} "
        f"{'target':>7}  verdict"
    )
    group = ""
    for c in cases:
        if c.group != group:
            group = c.group
            print(f"  -- {group}")
        p95 = percentile(c.inproc, 95)
        target = f"{c.target:.0f}" if c.target else "-"
        print(
            f"  {c.key:<54} {c.rows:>5} {percentile(c.inproc, 50):8.2f} {p95:8.2f} "
            f"{max(c.inproc):8.2f} {percentile(c.inproc_cpu, 50):8.2f} {target:>7}  "
            f"{_verdict(p95, c.target)}"
        )


def print_http(cases: list[Case], floor_samples: list[float]) -> float:
    floor = percentile(floor_samples, 50)
    print()
    print(
        "Over HTTP (sequential, keep-alive; ms). server~ = client - p50 of GET /healthz "
        f"({floor:.2f} ms); cpu = server CPU per request"
    )
    print(
        f"  {'case':<54} {'c.p50':>7} {'c.p95':>7} {'s~p50':>7} {'s~p95':>7} {'cpu':>6} "
        f"{'target':>6}  verdict"
    )
    print(f"  {'GET /healthz (baseline)':<54} {floor:7.2f} {percentile(floor_samples, 95):7.2f}")
    group = ""
    for c in cases:
        if not c.http:
            continue
        if c.group != group:
            group = c.group
            print(f"  -- {group}")
        p50, p95 = percentile(c.http, 50), percentile(c.http, 95)
        target = f"{c.target:.0f}" if c.target else "-"
        print(
            f"  {c.key:<54} {p50:7.2f} {p95:7.2f} {p50 - floor:7.2f} {p95 - floor:7.2f} "
            f"{c.cpu_ms:6.2f} {target:>6}  {_verdict(p95 - floor, c.target)}"
        )
    return floor


def print_plans(cases: list[Case], floor: float, all_plans: bool) -> None:
    """Plans of the cases whose queries miss (in-process); HTTP-only misses are listed apart:
    their queries are within target, the rest of the request is not."""
    query_misses, http_only = [], []
    for c in cases:
        if c.target is None and not all_plans:
            continue
        miss_in = c.target is not None and percentile(c.inproc, 95) > c.target
        miss_http = (
            c.target is not None and bool(c.http) and (percentile(c.http, 95) - floor > c.target)
        )
        if all_plans or miss_in:
            query_misses.append((c, miss_in, miss_http))
        elif miss_http:
            http_only.append(c)
    if query_misses:
        print()
        print("Query plans" + ("" if all_plans else " of the cases whose queries miss the target"))
        for c, miss_in, miss_http in query_misses:
            where = [w for w, m in (("in-process", miss_in), ("HTTP", miss_http)) if m]
            print(
                f"\n  {c.key}: in-process p95 {percentile(c.inproc, 95):.2f} ms, cpu p50 "
                f"{percentile(c.inproc_cpu, 50):.2f} ms"
                + (f"  [misses: {', '.join(where)}]" if where else "")
            )
            for sql, lines in c.plans:
                print(f"    SQL: {sql}")
                for line in lines:
                    print(f"     {line}")
    if http_only:
        print()
        print(
            "Missed over HTTP only (queries within target in-process; the time is rendering, "
            "session/viewer lookups, cache refreshes, or load on the machine):"
        )
        for c in http_only:
            print(
                f"  {c.key:<54} server~ p95 {percentile(c.http, 95) - floor:7.2f} ms, query "
                f"p95 {percentile(c.inproc, 95):6.2f} ms, server cpu {c.cpu_ms:6.2f} ms/req"
            )


def _group_line(cases: list[Case], group: str, values: Callable[[Case], float]) -> str:
    chosen = [c for c in cases if c.group == group]
    if not chosen:
        return "n/a"
    worst = max(chosen, key=values)
    target = TARGETS[group]
    passed = sum(1 for c in chosen if values(c) <= target)
    verdict = "PASS" if passed == len(chosen) else "FAIL"
    return (
        f"{verdict}  {passed}/{len(chosen)} cases p95 <= {target:.0f} ms; worst p95 "
        f"{values(worst):.2f} ms ({worst.key})"
    )


def _worst_cpu(cases: list[Case], values: Callable[[Case], list[float]]) -> str:
    parts = []
    for group in ("board", "search", "contact"):
        chosen = [c for c in cases if c.group == group and values(c)]
        if chosen:
            worst = max(chosen, key=lambda c: percentile(values(c), 50))
            parts.append(f"{group} worst {percentile(values(worst), 50):.1f} ms ({worst.key})")
    return "; ".join(parts)


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


# -- main ------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--leads", type=int, default=100_000, help="leads to seed (100000)")
    p.add_argument("--reps", type=int, default=50, help="timed repetitions per case (50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per case (reps/10)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the data (1)")
    p.add_argument("--db", type=Path, default=None, help="reuse a seeded SQLite file (no seeding)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, server log)")
    p.add_argument("--plans", action="store_true", help="print every case's query plan")
    p.add_argument("--no-http", action="store_true", help="in-process measurements only")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    install_sigterm_handler()
    workdir = Path(tempfile.mkdtemp(prefix="leadboard-bench-board-"))
    try:
        return _run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    started = time.monotonic()
    load_before = os.getloadavg()
    warmup = args.warmup if args.warmup is not None else max(2, args.reps // 10)
    if args.db is not None:
        if not args.db.exists():
            raise SystemExit(f"{args.db} does not exist")
        db_path = args.db.resolve()
        upgrade(f"sqlite+aiosqlite:///{db_path}")
        seeded = discover(db_path)
        print(f"reusing {db_path}: {seeded.leads:,} leads (no seeding)", flush=True)
    else:
        if args.leads < 1000:
            raise SystemExit("--leads must be at least 1000")
        db_path = workdir / "board.sqlite"
        print(f"seeding {args.leads:,} leads into {db_path} ...", flush=True)
        seeded = seed(db_path, args.leads, args.seed)
        for step, seconds in seeded.seed_seconds.items():
            print(f"  {step:<28} {seconds:7.2f} s", flush=True)
        rate = args.leads / seeded.seed_seconds["insert leads"]
        print(f"  ({rate:,.0f} leads/s inserted)", flush=True)
    size_mb = db_path.stat().st_size / 2**20
    print(
        f"database: {seeded.leads:,} leads, big lead #{seeded.big_lead_id} with "
        f"{seeded.timeline_items:,} timeline items, {size_mb:,.0f} MB, SQLite "
        f"{sqlite3.sqlite_version}",
        flush=True,
    )

    cases = build_cases(seeded, *asyncio.run(first_reads(seeded)))
    print(f"\nin-process: {len(cases)} cases x {args.reps} reps (+{warmup} warm-up)", flush=True)
    asyncio.run(measure_inprocess(seeded, cases, args.reps, warmup))
    print_inprocess(cases)

    floor_samples: list[float] = []
    exports: list[ExportRun] = []
    fresh: list[FreshPages] = []
    rss: dict[str, dict[str, int]] = {}
    if not args.no_http:
        with (
            board_server(workdir, db_path) as (base, child),
            httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client,
        ):
            sign_in(client)
            try:
                rss["start"] = _proc_status(child.pid)
                floor_samples = measure_healthz(client, args.reps * 2, warmup)
                floor = percentile(floor_samples, 50)
                http_count = sum(1 for c in cases if c.path)
                print(
                    f"\nHTTP: {http_count} cases x {args.reps} reps (+{warmup} warm-up); "
                    f"GET /healthz p50 {floor:.2f} ms",
                    flush=True,
                )
                measure_http(client, child, cases, args.reps, warmup, floor)
                for query in (BoardQuery(), BoardQuery(sort="score")):
                    walk = measure_fresh_pages(client, child, query, args.reps)
                    fresh.append(walk)
                    print(
                        f"  fresh pages {walk.query}: {len(walk.http)} pages by Next, client p50 "
                        f"{percentile(walk.http, 50):.2f} p95 {percentile(walk.http, 95):.2f} ms"
                        f"  cpu {walk.cpu_ms:.2f} ms/req",
                        flush=True,
                    )
                floor_samples += measure_healthz(client, args.reps * 2, 0)
                rss["after pages"] = _proc_status(child.pid)
                for k in range(2):
                    print(f"\nexport {k + 1}/2: GET /export.csv ...", flush=True)
                    run = measure_export(client, child)
                    exports.append(run)
                    print(
                        f"  {run.rows:,} rows, {run.bytes / 2**20:.1f} MB in {run.seconds:.2f} s = "
                        f"{run.rows_per_s:,.0f} rows/s (first byte {run.ttfb * 1000:.0f} ms); "
                        f"server RSS {_mb(run.rss_before_kb)} -> peak {_mb(run.rss_peak_kb)} -> "
                        f"{_mb(run.rss_after_kb)}; VmHWM {_mb(run.hwm_before_kb)} -> "
                        f"{_mb(run.hwm_after_kb)}",
                        flush=True,
                    )
            finally:
                with contextlib.suppress(httpx.HTTPError):
                    sign_out(client)
        code = child.proc.returncode if child.proc else None
        print(f"server stopped by SIGTERM (exit status {code}; uvicorn re-raises the signal)")
        floor = print_http(cases, floor_samples)
    else:
        floor = float("nan")
    print_plans(cases, floor, args.plans)

    def inproc_p95(c: Case) -> float:
        return percentile(c.inproc, 95)

    def http_p95(c: Case) -> float:
        return percentile(c.http, 95) - floor if c.http else float("-inf")

    print()
    print("=" * 100)
    print(f"Leadboard board benchmark: {seeded.leads:,} leads in one workspace, SQLite")
    print(f"command:      {command_line()}")
    print(
        f"setup:        {args.reps} reps per case (+{warmup} warm-up), {len(cases)} cases, "
        f"1 uvicorn worker, in-process broker, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs"
    )
    if seeded.seed_seconds:
        print(
            f"seed:         {seeded.seed_seconds['total']:.1f} s total (leads generated in "
            f"{seeded.seed_seconds['generate leads']:.1f} s, inserted in "
            f"{seeded.seed_seconds['insert leads']:.1f} s; 5,000-item timeline "
            f"{seeded.seed_seconds['timeline (generate+insert)']:.2f} s; migrate "
            f"{seeded.seed_seconds['migrate']:.1f} s)"
        )
    else:
        print(f"seed:         reused {db_path}")
    print(
        f"data:         {size_mb:,.0f} MB; big lead #{seeded.big_lead_id}: "
        f"{seeded.timeline_items:,} timeline items"
    )
    for group, label in (("board", "board"), ("search", "search"), ("contact", "contact page")):
        print(f"in-process:   {label:<13} {_group_line(cases, group, inproc_p95)}")
    print(f"in-process:   CPU p50 (load-independent): {_worst_cpu(cases, lambda c: c.inproc_cpu)}")
    if floor_samples:
        http_cases = [c for c in cases if c.http]
        print(
            f"HTTP:         server~ = client - GET /healthz p50 ({floor:.2f} ms); healthz p95 "
            f"{percentile(floor_samples, 95):.2f} ms"
        )
        for group, label in (("board", "board"), ("search", "search"), ("contact", "contact page")):
            print(f"HTTP:         {label:<13} {_group_line(http_cases, group, http_p95)}")
        print(
            "HTTP:         server CPU per request (load-independent): "
            + _worst_cpu(http_cases, lambda c: [c.cpu_ms])
        )
        for walk in fresh:
            p95 = percentile(walk.http, 95) - floor
            print(
                f"HTTP:         fresh rows  {walk.query:<14} {len(walk.http)} pages by Next (no "
                f"row rendered before): server~ p50 {percentile(walk.http, 50) - floor:.2f} p95 "
                f"{p95:.2f} ms, cpu {walk.cpu_ms:.1f} ms/req  {_verdict(p95, TARGETS['board'])}"
            )
        for k, run in enumerate(exports, 1):
            print(
                f"export {k}:     {run.rows:,} rows in {run.seconds:.2f} s = "
                f"{run.rows_per_s:,.0f} rows/s ({run.bytes / 2**20:.1f} MB); server RSS "
                f"{_mb(run.rss_before_kb)} -> peak {_mb(run.rss_peak_kb)} (+"
                f"{_mb(run.rss_peak_kb - run.rss_before_kb)}) -> {_mb(run.rss_after_kb)}"
            )
        if "start" in rss and "after pages" in rss:
            print(
                f"server RSS:   {_mb(rss['start'].get('VmRSS', 0))} after sign-in, "
                f"{_mb(rss['after pages'].get('VmRSS', 0))} after the page cases"
            )
    others = [c for c in cases if c.group == "other"]
    if others:
        worst = max(others, key=inproc_p95)
        print(
            f"aggregates:   worst p95 {inproc_p95(worst):.2f} ms ({worst.key}; no target, cached)"
        )
    load_after = os.getloadavg()
    print(
        f"machine load: 1-min load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at "
        f"end ({os.cpu_count()} CPUs; other work on the machine inflates the tails)"
    )
    print(f"elapsed:      {time.monotonic() - started:.0f} s")
    print("=" * 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())

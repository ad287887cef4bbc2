"""The board benchmark's data: what production holds, seeded on SQLite or PostgreSQL.

One workspace of `leads` leads (realistic names, businesses, cities, statuses, owners; 6 % flagged
stale by reconciliation, most of them still quiet, some active again since), six people (an admin
and five agents) made through the app's own services, one lead with a 5,000-item timeline (3,500
messages, 1,000 notes, 500 lead changes), a day of webhook deliveries in the inbox (`inbox` rows
received over the last 24 h, processed, ~850-byte bodies like Kapso's), and a second, smaller
workspace none of whose leads was ever flagged (the stale view when nothing is). The same seed
gives the same data on both databases (times relative to the moment of seeding).

The database is migrated with app.migrate.upgrade first, so the schema is the migrated one; the
rows go in the fastest way each database has, with values stored exactly as the app stores them:
SQLite through sqlite3 executemany (UTC instants as SQLAlchemy's naive text, booleans 0/1; the
contacts indexes and search triggers dropped for the load and rebuilt from their own CREATE
statements, the FTS index in one pass), PostgreSQL through asyncpg's COPY (timestamptz as aware
UTC datetimes, booleans as bool; the contacts indexes that back no constraint, the pg_trgm GIN
one included, dropped for the load and rebuilt from their own definitions), then ANALYZE (as
autovacuum would within a minute; SQLite keeps the migration's statistics, as before).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _db import rows as db_rows
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import create_user
from app.db import Database
from app.ingest.samples import FIRST_NAMES, INBOUND_TEXTS, LAST_NAMES, OUTBOUND_TEXTS
from app.leads.board import STATUSES, TEMPERATURES
from app.leads.services import preview_of, search_text_for
from app.migrate import upgrade
from app.sarah.rules import STATE_TO_STATUS

WORKSPACE_NAME = "Bench Board"
WORKSPACE_PHONE_ID = "bench-board-phone-number-id"
QUIET_NAME = "Bench Board (never flagged)"
QUIET_PHONE_ID = "bench-board-quiet-phone-number-id"
ADMIN_EMAIL = "bench-admin@leadboard.local"
ADMIN_PASSWORD = "bench-board-password"
AGENTS = ["Rizky Pratama", "Ayu Lestari", "Dimas Saputra", "Nadia Putri", "Bagus Hidayat"]
BIG_ITEMS = {"messages": 3500, "notes": 1000, "changes": 500}
BATCH = 5000
KAPSO_PHONE_NUMBER_ID = "109876543210987"

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
# Kapso's events in a day's traffic: mostly inbound, each outbound followed by its statuses.
INBOX_EVENTS = {
    "whatsapp.message.received": 67,
    "whatsapp.message.sent": 12,
    "whatsapp.message.delivered": 12,
    "whatsapp.message.read": 9,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(epoch: float | None) -> datetime | None:
    """A UTC instant (aware), as the app hands it to the database."""
    return None if epoch is None else _EPOCH + timedelta(seconds=epoch)


def _weighted(rng: random.Random, weights: dict[Any, int], k: int) -> list[Any]:
    return rng.choices(list(weights), weights=list(weights.values()), k=k)


def _zipf(values: Sequence[str], rng: random.Random, k: int, s: float = 0.9) -> list[str]:
    """A few common values and a long tail, like real business types and cities."""
    weights = [1.0 / (i + 1) ** s for i in range(len(values))]
    return rng.choices(list(values), weights=weights, k=k)


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
INBOX_COLUMNS = _words("""
    workspace_id provider delivery_key event_type body received_at processed_at attempts error
    duplicates
""")
Rows = list[tuple[Any, ...]]


@dataclass
class Seeded:
    """What the measurements need to know about the database."""

    database: str  # sqlite | postgres
    url: str
    db_path: Path | None  # the SQLite file
    workspace_id: int
    admin_id: int
    big_lead_id: int
    small_lead_id: int
    leads: int
    timeline_items: int
    sample_phone: str
    inbox: int
    quiet_workspace_id: int | None  # a workspace none of whose leads was ever flagged
    quiet_leads: int
    seed_seconds: dict[str, float] = field(default_factory=dict)


# -- accounts --------------------------------------------------------------------------------------
async def _create_accounts(url: str) -> tuple[int, int, list[int], int]:
    """The workspace, its admin and agents, and the never-flagged workspace, through the app's
    own services."""
    from app.workspaces.services import create_workspace

    async def workspace(session: AsyncSession, name: str, phone_id: str) -> Any:
        created = await create_workspace(session, name=name, kapso_phone_number_id=phone_id)
        return created.workspace

    db = Database(url)
    try:
        async with db.write() as session:
            ws = await workspace(session, WORKSPACE_NAME, WORKSPACE_PHONE_ID)
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
            quiet = await workspace(session, QUIET_NAME, QUIET_PHONE_ID)
            assert ws.id is not None and admin.id is not None and quiet.id is not None
            return ws.id, admin.id, agents, quiet.id
    finally:
        await db.dispose()


# -- rows ------------------------------------------------------------------------------------------
def contact_rows(
    n: int, ws: int, owners: list[int], admin: int | None, now: float, rng: random.Random,
    *, flagged: bool = True,
) -> tuple[Rows, str]:  # fmt: skip
    """n leads sorted by creation (ids grow with created_at, as in real life); the first one is
    the big lead (oldest, still the most active). flagged=False: reconciliation never flagged
    any. Returns the rows and the big lead's phone."""
    day = 86400.0
    created = sorted(now - rng.random() * 90 * day for _ in range(n - 1))
    created.insert(0, now - 90 * day - 3600)
    numbers = rng.sample(range(10_000_000, 100_000_000), n)
    statuses = _weighted(rng, STATUS_WEIGHTS, n)
    temps = _weighted(rng, TEMPERATURE_WEIGHTS, n)
    businesses = _zipf(BUSINESS_TYPES, rng, n)
    locations = _zipf(LOCATIONS, rng, n)
    owner_weights: dict[int | None, int] = {None: 45}
    if admin is not None:
        owner_weights[admin] = 15
    owner_weights.update({o: 8 for o in owners})
    owner_ids = _weighted(rng, owner_weights, n)
    rows: Rows = []
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
        if not flagged:
            stale = None
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
                _ts(hot_since), _ts(stale), needs_reply,
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


def big_lead_rows(
    ws: int, contact: int, users: list[tuple[int, str]], start: float, end: float,
    rng: random.Random,
) -> tuple[Rows, Rows, Rows]:  # fmt: skip
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
                _ts(at + rng.random() * 60), error, origin, media,
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
    changes.sort(key=lambda r: r[-1])  # ids grow with time, as the app writes them
    notes.sort(key=lambda r: r[-1])
    return messages, notes, changes


def inbox_rows(n: int, ws: int, leads: Rows, now: float, rng: random.Random) -> Rows:
    """A day of Kapso deliveries to the workspace, received over the last 24 h (ids grow with
    time), all processed: bodies shaped like Kapso's v2 payloads (~850 bytes), about the leads;
    0.5 % were redelivered once (acknowledged as duplicates)."""
    received = [*sorted(now - rng.random() * 86400 for _ in range(n - 1)), now - 2.0][:n]
    events = _weighted(rng, INBOX_EVENTS, n)
    out: Rows = []
    for at, event in zip(received, events, strict=True):
        lead = leads[rng.randrange(len(leads))]
        phone, name = lead[1], lead[4] or lead[3] or "Customer"
        wamid = f"wamid.{uuid.UUID(int=rng.getrandbits(128)).hex.upper()}"
        inbound = event == "whatsapp.message.received"
        text = rng.choice(INBOUND_TEXTS if inbound else OUTBOUND_TEXTS)
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = event.rsplit(".", 1)[1]
        body = {
            "message": {
                "id": wamid, "timestamp": str(int(at)), "type": "text",
                **({"from": phone[1:]} if inbound else {"to": phone[1:]}),
                "text": {"body": text},
                "kapso": {
                    "direction": "inbound" if inbound else "outbound", "status": status,
                    "processing_status": "pending" if inbound else "completed",
                    "origin": "cloud_api", "has_media": False, "content": text,
                },
            },
            "conversation": {
                "id": str(uuid.UUID(int=rng.getrandbits(128))), "phone_number": phone,
                "status": "active", "last_active_at": stamp, "created_at": stamp,
                "updated_at": stamp, "metadata": {}, "phone_number_id": KAPSO_PHONE_NUMBER_ID,
                "kapso": {"contact_name": name, "last_message_timestamp": stamp},
            },
            "is_new_conversation": False, "phone_number_id": KAPSO_PHONE_NUMBER_ID,
        }  # fmt: skip
        out.append(
            (
                ws, "kapso", str(uuid.UUID(int=rng.getrandbits(128), version=4)), event,
                json.dumps(body, ensure_ascii=False, separators=(",", ":")), _ts(at),
                _ts(at + 0.005 + rng.random() * 0.08), 0, None, 1 if rng.random() < 0.005 else 0,
            )
        )  # fmt: skip
    return out


# -- loading ---------------------------------------------------------------------------------------
def _for_sqlite(rows: Rows) -> Rows:
    """Values as SQLAlchemy stores them on SQLite: UTC instants as naive text, booleans 0/1."""

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None).isoformat(" ", "microseconds")
        if isinstance(v, bool):
            return int(v)
        return v

    return [tuple(value(v) for v in row) for row in rows]


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _executemany(conn: sqlite3.Connection, table: str, columns: list[str], rows: Rows) -> None:
    sql = _insert_sql(table, columns)
    for i in range(0, len(rows), BATCH):
        conn.executemany(sql, _for_sqlite(rows[i : i + BATCH]))


class _Loader:
    """One database's bulk load: contacts (its secondary indexes dropped and rebuilt), then the
    other tables, then ANALYZE. Subclasses per database."""

    def load_contacts(self, rows: Rows) -> None:
        raise NotImplementedError

    def contact_id(self, ws: int, phone: str) -> int:
        raise NotImplementedError

    def load(self, table: str, columns: list[str], rows: Rows) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _SqliteLoader(_Loader):
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")

    def load_contacts(self, rows: Rows) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        # Drop the contacts table's secondary indexes and triggers, insert, then rebuild them
        # from their exact CREATE statements (one sorted build each: ~2x faster than keeping 14
        # indexes up to date row by row) and the search index in one pass (the triggers would
        # feed it row by row: 4x slower). The schema ends up identical to the migrated one.
        indexes = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'contacts' AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _sql in indexes:
            conn.execute(f'DROP {kind.upper()} "{name}"')
        _executemany(conn, "contacts", CONTACT_COLUMNS, rows)
        for _kind, _name, sql in indexes:
            conn.execute(sql)
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'contacts_fts'").fetchone():
            conn.execute("INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')")
        conn.execute("COMMIT")

    def contact_id(self, ws: int, phone: str) -> int:
        sql = "SELECT id FROM contacts WHERE workspace_id = ? AND phone_e164 = ?"
        return int(self.conn.execute(sql, (ws, phone)).fetchone()[0])

    def load(self, table: str, columns: list[str], rows: Rows) -> None:
        self.conn.execute("BEGIN")
        _executemany(self.conn, table, columns, rows)
        self.conn.execute("COMMIT")

    def finish(self) -> None:
        # No ANALYZE: as before, the planner keeps the statistics of the migration (the board's
        # queries plan their SQLite reads themselves, see app.leads.board.plan_view).
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


class _PostgresLoader(_Loader):
    """asyncpg on a loop of its own: COPY for the rows, the contacts indexes that back no
    constraint (pg_trgm's GIN included) dropped for the load and rebuilt from pg_indexes'
    definitions, in one transaction (a failed load leaves the migrated schema)."""

    def __init__(self, url: str) -> None:
        import asyncpg

        self.loop = asyncio.new_event_loop()
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))
        self._run(self.conn.execute("SET maintenance_work_mem = '256MB'"))

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def load_contacts(self, rows: Rows) -> None:
        async def load() -> None:
            conn = self.conn
            async with conn.transaction():
                indexes = await conn.fetch(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = "
                    "current_schema() AND i.tablename = 'contacts' AND NOT EXISTS (SELECT 1 "
                    "FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' "
                    "|| quote_ident(i.indexname))::regclass)"
                )
                for index in indexes:
                    await conn.execute(f'DROP INDEX "{index["indexname"]}"')
                await conn.copy_records_to_table("contacts", records=rows, columns=CONTACT_COLUMNS)
                for index in indexes:
                    await conn.execute(index["indexdef"])

        self._run(load())

    def contact_id(self, ws: int, phone: str) -> int:
        sql = "SELECT id FROM contacts WHERE workspace_id = $1 AND phone_e164 = $2"
        return int(self._run(self.conn.fetchval(sql, ws, phone)))

    def load(self, table: str, columns: list[str], rows: Rows) -> None:
        self._run(self.conn.copy_records_to_table(table, records=rows, columns=columns))

    def finish(self) -> None:
        self._run(self.conn.execute("ANALYZE"))
        self._run(self.conn.close())
        self.loop.close()


def seed(database: str, url: str, leads: int, inbox: int, seed_value: int) -> Seeded:
    """Migrate, create the accounts, load every row; timed step by step."""
    times = [time.perf_counter()]

    def step() -> None:
        times.append(time.perf_counter())

    upgrade(url)
    step()
    ws, admin, agents, quiet_ws = asyncio.run(_create_accounts(url))
    step()
    rng = random.Random(seed_value)
    now = time.time()
    rows, big_phone = contact_rows(leads, ws, agents, admin, now, rng)
    quiet_leads = max(1000, leads // 10)
    quiet_rows, _ = contact_rows(
        quiet_leads, quiet_ws, [], None, now, random.Random(f"{seed_value}/quiet"), flagged=False
    )
    step()
    path = Path(url.split(":///", 1)[1]) if database == "sqlite" else None
    loader: _Loader = _SqliteLoader(path) if path is not None else _PostgresLoader(url)
    try:
        loader.load_contacts(rows + quiet_rows)
        step()
        big_id = loader.contact_id(ws, big_phone)
        people = [(admin, "Bench Admin"), *zip(agents, AGENTS, strict=True)]
        created, activity = rows[0][CONTACT_COLUMNS.index("created_at")], rows[0][-1]
        messages, notes, changes = big_lead_rows(
            ws, big_id, people, created.timestamp(), activity.timestamp(), rng
        )
        loader.load("messages", MESSAGE_COLUMNS, messages)
        loader.load("notes", NOTE_COLUMNS, notes)
        loader.load("lead_changes", CHANGE_COLUMNS, changes)
        step()
        deliveries = inbox_rows(inbox, ws, rows, now, random.Random(f"{seed_value}/inbox"))
        step()
        loader.load("webhook_inbox", INBOX_COLUMNS, deliveries)
        step()
    finally:
        loader.finish()
    step()
    seeded = discover(database, url)
    steps = [
        "migrate", "workspace+users", "generate leads", "insert leads",
        "timeline (generate+insert)", "generate inbox", "insert inbox", "analyze/checkpoint",
    ]  # fmt: skip
    seeded.seed_seconds = {s: b - a for s, a, b in zip(steps, times[:-1], times[1:], strict=True)}
    seeded.seed_seconds["total"] = times[-1] - times[0]
    return seeded


# -- reading back ----------------------------------------------------------------------------------
def _one(url: str, sql: str) -> Any:
    found = db_rows(url, sql)
    return found[0][0] if found else None


def discover(database: str, url: str) -> Seeded:
    """Find the bench workspaces, the admin and the big lead in a seeded database (SQL both
    databases understand; only integers are interpolated)."""
    ws = _one(
        url, f"SELECT id FROM workspaces WHERE kapso_phone_number_id = '{WORKSPACE_PHONE_ID}'"
    )
    if ws is None:
        raise SystemExit(f"{url} holds no {WORKSPACE_NAME!r} workspace: seed it first")
    ws = int(ws)
    admin = int(_one(url, f"SELECT id FROM users WHERE email = '{ADMIN_EMAIL}'"))
    big, items = db_rows(
        url,
        f"SELECT contact_id, count(*) FROM messages WHERE workspace_id = {ws} "
        "GROUP BY contact_id ORDER BY 2 DESC LIMIT 1",
    )[0]
    items += _one(url, f"SELECT count(*) FROM notes WHERE contact_id = {big}")
    items += _one(url, f"SELECT count(*) FROM lead_changes WHERE contact_id = {big}")
    leads = int(_one(url, f"SELECT count(*) FROM contacts WHERE workspace_id = {ws}"))
    small = int(_one(url, f"SELECT max(id) FROM contacts WHERE workspace_id = {ws}"))
    phone = _one(
        url,
        f"SELECT phone_e164 FROM contacts WHERE workspace_id = {ws} ORDER BY id "
        f"LIMIT 1 OFFSET {leads // 2}",
    )
    inbox = int(_one(url, f"SELECT count(*) FROM webhook_inbox WHERE workspace_id = {ws}"))
    quiet = _one(url, f"SELECT id FROM workspaces WHERE kapso_phone_number_id = '{QUIET_PHONE_ID}'")
    quiet_leads = 0
    if quiet is not None:
        quiet_leads = int(_one(url, f"SELECT count(*) FROM contacts WHERE workspace_id = {quiet}"))
    return Seeded(
        database=database,
        url=url,
        db_path=Path(url.split(":///", 1)[1]) if database == "sqlite" else None,
        workspace_id=ws,
        admin_id=admin,
        big_lead_id=int(big),
        small_lead_id=small,
        leads=leads,
        timeline_items=int(items),
        sample_phone=str(phone) if phone else "+6281234567890",
        inbox=inbox,
        quiet_workspace_id=int(quiet) if quiet is not None else None,
        quiet_leads=quiet_leads,
    )


def facet_values(url: str, ws: int, column: str) -> tuple[str, str]:
    """The most and the least common value of a column (they bracket the cost)."""
    found = db_rows(
        url,
        f"SELECT {column}, count(*) FROM contacts WHERE workspace_id = {ws} AND {column} IS NOT "
        f"NULL GROUP BY {column} ORDER BY 2 DESC, 1",
    )
    return str(found[0][0]), str(found[-1][0])


def database_size_mb(seeded: Seeded) -> float:
    if seeded.db_path is not None:
        return seeded.db_path.stat().st_size / 2**20
    return float(_one(seeded.url, "SELECT pg_database_size(current_database())")) / 2**20

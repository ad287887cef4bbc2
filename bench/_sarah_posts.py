"""What Sarah posts to POST /sarah/state: realistic conversations for bench/sarah.py.

Each lead's conversation walks Sarah's flow (greeting -> collect_name -> qualifying ->
validate_pain_points -> scoring -> handoff -> completed; many stop early) with rising scores,
temperatures following the score, and extracted_data growing, so the server does the work real
traffic makes it do. Kept apart from the measuring code: this is the data, not the method.
"""

from __future__ import annotations

import collections
import json
import random
from typing import Any

from app.ingest.samples import SampleLead
from app.phones import normalize_phone, normalize_wa_id
from app.workspaces.services import DEMO_SARAH_KEY

SARAH_PATH = "/sarah/state"
SARAH_HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {DEMO_SARAH_KEY}"}

# (state, score band reached by the end of the stage, turns spent in it)
STAGES: list[tuple[str, tuple[int, int], tuple[int, int]]] = [
    ("greeting", (0, 10), (1, 2)),
    ("collect_name", (5, 20), (1, 3)),
    ("qualifying", (20, 50), (4, 10)),
    ("validate_pain_points", (35, 65), (3, 6)),
    ("scoring", (50, 85), (2, 5)),
    ("handoff", (60, 95), (2, 4)),
    ("completed", (65, 100), (1, 2)),
]
# How far conversations get: many leads drop out early, as in real traffic.
REACH_WEIGHTS = [4, 8, 16, 18, 16, 16, 22]
BUSINESS_TYPES = [
    "katering",
    "toko kelontong",
    "laundry kiloan",
    "bengkel motor",
    "salon kecantikan",
    "kedai kopi",
    "distributor sembako",
    "konveksi",
    "apotek",
    "toko bangunan",
    "properti (agen)",
    "jasa travel umroh",
]
CITIES = [
    "Bekasi",
    "Tangerang Selatan",
    "Depok",
    "Bogor",
    "Jakarta Timur",
    "Bandung",
    "Surabaya",
    "Semarang",
    "Medan",
    "Makassar",
    "Denpasar",
    "Yogyakarta",
]
PAIN_POINTS = [
    "omzet turun",
    "pencatatan stok masih manual",
    "pesanan WhatsApp sering terlewat",
    "susah cari karyawan",
    "promosi online tidak efektif",
    "arus kas tidak terpantau",
    "pelanggan lama jarang kembali",
    "harga bahan baku naik",
    "belum punya sistem kasir",
    "laporan keuangan berantakan",
]
GOALS = [
    "buka cabang kedua tahun depan",
    "naikkan omzet 30% dalam 6 bulan",
    "semua pesanan tercatat otomatis",
    "punya laporan harian tanpa rekap manual",
]
PRIORITIES = ["harga", "kemudahan", "dukungan after-sales", "kecepatan implementasi"]
URGENCY = ["rendah", "sedang", "tinggi", "mendesak"]


def temperature_for(score: int) -> str:
    if score >= 75:
        return "hot"
    if score >= 55:
        return "warm"
    if score >= 35:
        return "lukewarm"
    return "cold"


def sarah_phone(lead: SampleLead, rng: random.Random) -> str:
    """How Sarah names the lead: mostly the wa_id as Kapso gives it, sometimes with '+'."""
    return lead.phone if rng.random() < 0.8 else "+" + lead.phone


def conversation(lead: SampleLead, rng: random.Random) -> list[dict[str, Any]]:
    """The bodies Sarah posts over one lead's conversation, in order (one per bot turn)."""
    reach = rng.choices(range(len(STAGES)), weights=REACH_WEIGHTS)[0]
    quality = rng.random()
    phone = sarah_phone(lead, rng)
    language = "en" if rng.random() < 0.1 else "id"
    score, count = 0, 0
    extracted: dict[str, Any] = {}
    posts: list[dict[str, Any]] = []
    for state, (lo, hi), (tmin, tmax) in STAGES[: reach + 1]:
        turns = rng.randint(tmin, tmax)
        goal = lo + (hi - lo) * quality
        for t in range(turns):
            count += rng.choice((2, 2, 2, 3, 4))  # the lead's message(s) and Sarah's reply
            step = (goal - score) * (t + 1) / turns
            score = round(score + max(0.0, step) + rng.uniform(-1.0, 3.0))
            if rng.random() < 0.04:
                score -= rng.randint(3, 8)  # a doubt, an objection
            score = max(0, min(100, score))
            if state == "collect_name" and t == turns - 1:
                first = lead.name.split()[0]
                extracted["name"] = first if rng.random() < 0.3 else lead.name
            elif state == "qualifying":
                if t == 0:
                    extracted["business_type"] = rng.choice(BUSINESS_TYPES)
                elif t == 1:
                    extracted["domisili"] = rng.choice(CITIES)
                elif t == 2:
                    extracted["business_duration"] = f"{rng.randint(1, 15)} tahun"
                elif t == 3:
                    extracted["team_size"] = f"{rng.randint(1, 40)} orang"
            elif state == "validate_pain_points":
                pains = extracted.setdefault("pain_points", [])
                pick = rng.choice(PAIN_POINTS)
                if pick not in pains and len(pains) < 4:
                    pains.append(pick)
            elif state == "scoring" and t == 0:
                extracted["goals"] = rng.choice(GOALS)
                extracted["priority"] = rng.choice(PRIORITIES)
                extracted["urgency_level"] = rng.choice(URGENCY)
            elif state == "handoff" and t == 0:
                extracted["jadwal_demo"] = rng.choice(["Sabtu 10:00", "Senin 14:00", "besok pagi"])
            posts.append(
                {
                    "contact_phone": phone,
                    "state": state,
                    "lead_score": score,
                    "lead_temperature": temperature_for(score),
                    "extracted_data": json.loads(json.dumps(extracted)),  # a snapshot
                    "language": language,
                    "message_count": count,
                }
            )
    return posts


def make_leads(count: int, seed: int) -> list[SampleLead]:
    """Distinct leads whose wa_id Sarah's parser and the webhook's agree on."""
    rng = random.Random(seed)
    leads: list[SampleLead] = []
    seen: set[str] = set()
    while len(leads) < count:
        lead = SampleLead.random(rng)
        e164 = normalize_wa_id(lead.phone)
        if e164 is None or e164 in seen or normalize_phone(lead.phone) != e164:
            continue
        seen.add(e164)
        leads.append(lead)
    return leads


def interleave(leads: list[SampleLead], seed: int) -> list[bytes]:
    """All the leads' conversations, interleaved at random, each lead's posts in order."""
    rng = random.Random(f"{seed}/posts")
    queues = [collections.deque(conversation(lead, rng)) for lead in leads]
    active = [q for q in queues if q]
    out: list[bytes] = []
    while active:
        i = rng.randrange(len(active))
        body = active[i].popleft()
        out.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        if not active[i]:
            active[i] = active[-1]
            active.pop()
    return out


def live_state(lead: SampleLead, rng: random.Random, score: int) -> dict[str, Any]:
    """A Sarah body for a lead at this score: the stage and extracted data that go with it."""
    if score < 10:
        state = "greeting"
    elif score < 20:
        state = "collect_name"
    elif score < 45:
        state = "qualifying"
    elif score < 65:
        state = "validate_pain_points"
    elif score < 85:
        state = "scoring"
    else:
        state = "handoff"  # not "completed": a converted lead may leave a filtered view
    extracted: dict[str, Any] = {"name": lead.name}
    if score >= 20:
        extracted.update(business_type=rng.choice(BUSINESS_TYPES), domisili=rng.choice(CITIES))
    if score >= 45:
        extracted["pain_points"] = rng.sample(PAIN_POINTS, 2)
    return {
        "contact_phone": lead.phone,
        "state": state,
        "lead_score": score,
        "lead_temperature": temperature_for(score),
        "extracted_data": extracted,
        "language": "id",
        "message_count": rng.randint(2, 60),
    }

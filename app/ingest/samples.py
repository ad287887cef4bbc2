"""Realistic Kapso v2 deliveries, built in code: for `leadboard demo`, the benchmarks and tests.

The shapes follow the recorded fixtures (tests/fixtures/webhooks/kapso); names and numbers are
invented.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from app.ingest.signatures import kapso_signature

FIRST_NAMES = [
    "Budi",
    "Siti",
    "Agus",
    "Dewi",
    "Rina",
    "Joko",
    "Putri",
    "Ketut",
    "Wayan",
    "Fajar",
    "Indah",
    "Rudi",
    "Sri",
    "Andi",
    "Maya",
    "Hendra",
    "Yuni",
    "Bayu",
    "Lestari",
    "Dimas",
    "Nur",
    "Eko",
]
LAST_NAMES = [
    "Santoso",
    "Rahmawati",
    "Wijaya",
    "Lestari",
    "Pratama",
    "Saputra",
    "Hidayat",
    "Kusuma",
    "Nugroho",
    "Setiawan",
    "Wulandari",
    "Siregar",
    "Harahap",
    "Gunawan",
    "Permata",
    "Susanto",
]
INBOUND_TEXTS = [
    "Halo kak, saya lihat iklan perumahan di Bekasi. Unit tipe 36 masih ada?",
    "DP-nya berapa ya kak? Bisa dicicil?",
    "Lokasinya dekat stasiun KRL nggak?",
    "Saya punya usaha katering, mau cari ruko untuk dapur produksi",
    "Kalau cash keras ada diskon berapa persen? 🙏",
    "Bisa survei hari Sabtu jam 10?",
    "Brosurnya sudah saya terima, terima kasih",
    "Sertifikatnya SHM atau HGB?",
    "Suami saya mau lihat dulu, nanti saya kabari ya",
    "Akad kreditnya bisa minggu depan?",
    "Masih ada promo free biaya KPR?",
    "Toko saya di Tangerang, omzet lagi turun, butuh sistem pemesanan online",
]
OUTBOUND_TEXTS = [
    "Halo kak, terima kasih sudah menghubungi kami 🙏 Boleh tahu nama kakak?",
    "Unit tipe 36 masih tersedia kak, DP mulai 10% dan bisa dicicil 12x.",
    "Lokasinya 5 menit dari stasiun Bekasi Timur kak.",
    "Siap kak, saya jadwalkan survei Sabtu jam 10 ya.",
    "Sertifikat SHM kak, sudah pecah per unit.",
]


def _ts(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wamid() -> str:
    return "wamid." + uuid.uuid4().hex.upper()


@dataclass(frozen=True, slots=True)
class SampleLead:
    phone: str  # wa_id digits, no '+'
    name: str
    conversation_id: str

    @classmethod
    def random(cls, rng: random.Random) -> SampleLead:
        prefix = rng.choice(["812", "813", "821", "822", "852", "857", "878", "896"])
        phone = f"62{prefix}{rng.randrange(10_000_000, 99_999_999)}"
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        return cls(phone=phone, name=name, conversation_id=str(uuid.UUID(int=rng.getrandbits(128))))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signed Kapso delivery: what the demo, the benchmark and tests POST."""

    event: str
    body: bytes
    headers: dict[str, str]
    wamid: str


def _conversation(lead: SampleLead, phone_number_id: str, at: datetime, *, name: bool) -> dict:
    conversation: dict = {
        "id": lead.conversation_id,
        "phone_number": "+" + lead.phone,
        "status": "active",
        "last_active_at": _iso(at),
        "created_at": _iso(at),
        "updated_at": _iso(at),
        "metadata": {},
        "phone_number_id": phone_number_id,
    }
    if name:
        conversation["kapso"] = {"contact_name": lead.name, "last_message_timestamp": _iso(at)}
    return conversation


def inbound_message(
    lead: SampleLead, phone_number_id: str, text: str, at: datetime | None = None
) -> dict:
    at = at or datetime.now(UTC)
    wamid = _wamid()
    return {
        "message": {
            "id": wamid,
            "timestamp": _ts(at),
            "type": "text",
            "from": lead.phone,
            "text": {"body": text},
            "kapso": {
                "direction": "inbound",
                "status": "received",
                "processing_status": "pending",
                "origin": "cloud_api",
                "has_media": False,
                "content": text,
            },
        },
        "conversation": _conversation(lead, phone_number_id, at, name=True),
        "is_new_conversation": False,
        "phone_number_id": phone_number_id,
    }


def outbound_message(
    lead: SampleLead,
    phone_number_id: str,
    text: str,
    status: str = "sent",
    at: datetime | None = None,
    wamid: str | None = None,
) -> dict:
    at = at or datetime.now(UTC)
    wamid = wamid or _wamid()
    statuses = [
        {"id": wamid, "status": s, "timestamp": _ts(at), "recipient_id": lead.phone}
        for s in ["sent", "delivered", "read"][: ["sent", "delivered", "read"].index(status) + 1]
    ]
    return {
        "message": {
            "id": wamid,
            "timestamp": _ts(at),
            "type": "text",
            "to": lead.phone,
            "text": {"body": text},
            "kapso": {
                "direction": "outbound",
                "status": status,
                "processing_status": "completed",
                "origin": "cloud_api",
                "has_media": False,
                "content": text,
                "statuses": statuses,
            },
        },
        "conversation": _conversation(lead, phone_number_id, at, name=False),
        "is_new_conversation": False,
        "phone_number_id": phone_number_id,
    }


def sign(event: str, payload: dict, secret: str, *, key: str | None = None) -> Delivery:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Event": event,
        "X-Webhook-Payload-Version": "v2",
        "X-Idempotency-Key": key or str(uuid.uuid4()),
        "X-Webhook-Signature": kapso_signature(secret, body),
    }
    return Delivery(event=event, body=body, headers=headers, wamid=payload["message"]["id"])


class TrafficGenerator:
    """An endless, plausible stream of deliveries over a pool of leads."""

    def __init__(
        self, phone_number_id: str, secret: str, *, leads: int = 40, seed: int | None = None
    ):
        self.rng = random.Random(seed)
        self.phone_number_id = phone_number_id
        self.secret = secret
        self.leads = [SampleLead.random(self.rng) for _ in range(leads)]
        self._sent: list[tuple[SampleLead, str, str, str]] = []  # (lead, wamid, status, text)

    def next(self) -> Delivery:
        roll = self.rng.random()
        if self._sent and roll < 0.25:
            lead, wamid, status, text = self._sent.pop(0)
            following = "delivered" if status == "sent" else "read"
            if following == "delivered":
                self._sent.append((lead, wamid, following, text))
            payload = outbound_message(
                lead, self.phone_number_id, text, status=following, wamid=wamid
            )
            return sign(f"whatsapp.message.{following}", payload, self.secret)
        lead = self.rng.choice(self.leads)
        if roll < 0.45:
            text = self.rng.choice(OUTBOUND_TEXTS)
            payload = outbound_message(lead, self.phone_number_id, text)
            self._sent.append((lead, payload["message"]["id"], "sent", text))
            return sign("whatsapp.message.sent", payload, self.secret)
        payload = inbound_message(lead, self.phone_number_id, self.rng.choice(INBOUND_TEXTS))
        return sign("whatsapp.message.received", payload, self.secret)

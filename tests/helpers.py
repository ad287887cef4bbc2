"""Small readers the tests use to look at what landed in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.ingest.models import WebhookInbox
from app.ingest.samples import SampleLead, inbound_message, sign
from app.ingest.services import IngestService
from app.leads.models import Contact, Conversation, Message
from app.live.outbox import ChangeEventRow
from tests.conftest import KAPSO_SECRET, PHONE_NUMBER_ID


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(model).where(*where))
            ).scalar_one()
        )


async def contacts(db: Database) -> list[Contact]:
    async with db.session() as session:
        return list((await session.execute(select(Contact).order_by(Contact.id))).scalars())


async def messages(db: Database) -> list[Message]:
    async with db.session() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def message(db: Database, wamid: str) -> Message | None:
    async with db.session() as session:
        return (
            await session.execute(select(Message).where(Message.wamid == wamid))
        ).scalar_one_or_none()


async def inbox(db: Database) -> list[WebhookInbox]:
    async with db.session() as session:
        return list(
            (await session.execute(select(WebhookInbox).order_by(WebhookInbox.id))).scalars()
        )


async def conversations(db: Database) -> list[Conversation]:
    async with db.session() as session:
        return list((await session.execute(select(Conversation))).scalars())


async def change_events(db: Database) -> list[ChangeEventRow]:
    async with db.session() as session:
        return list(
            (await session.execute(select(ChangeEventRow).order_by(ChangeEventRow.id))).scalars()
        )


async def deliver_inbound(service: IngestService, lead: SampleLead, text: str) -> None:
    """A signed inbound message straight through the ingest service; assert it was processed."""
    d = sign(
        "whatsapp.message.received", inbound_message(lead, PHONE_NUMBER_ID, text), KAPSO_SECRET
    )
    result = await service.receive_kapso({k.lower(): v for k, v in d.headers.items()}, d.body)
    assert result.outcome.value == "processed"

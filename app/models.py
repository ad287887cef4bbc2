"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from sqlmodel import SQLModel

from app.events import ChangeEventRow
from app.ingest.models import WebhookInbox
from app.leads.models import Contact, Conversation, Message
from app.workspaces.models import Workspace

metadata = SQLModel.metadata

__all__ = [
    "ChangeEventRow",
    "Contact",
    "Conversation",
    "Message",
    "WebhookInbox",
    "Workspace",
    "metadata",
]

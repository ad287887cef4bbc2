"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from sqlmodel import SQLModel

from app.events import ChangeEventRow
from app.ingest.models import WebhookInbox
from app.leads.models import Contact, Conversation, LeadChange, Message
from app.sarah.models import SarahState
from app.sync.models import SyncFailure
from app.workspaces.models import Workspace

metadata = SQLModel.metadata

__all__ = [
    "ChangeEventRow",
    "Contact",
    "Conversation",
    "LeadChange",
    "Message",
    "SarahState",
    "SyncFailure",
    "WebhookInbox",
    "Workspace",
    "metadata",
]

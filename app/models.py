"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from sqlmodel import SQLModel

from app.accounts.models import Membership, User
from app.ingest.models import WebhookInbox
from app.leads.models import Contact, Conversation, LeadChange, Message
from app.live.outbox import ChangeEventRow
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun, WorkerHeartbeat
from app.sarah.models import SarahState
from app.sessions import SessionRow
from app.sync.models import SyncFailure
from app.workspaces.models import ApiToken, Workspace

metadata = SQLModel.metadata

__all__ = [
    "ApiToken",
    "ChangeEventRow",
    "Contact",
    "Conversation",
    "LeadChange",
    "Membership",
    "Message",
    "Note",
    "ReconciliationRun",
    "SarahState",
    "SessionRow",
    "SyncFailure",
    "User",
    "WebhookInbox",
    "WorkerHeartbeat",
    "Workspace",
    "metadata",
]

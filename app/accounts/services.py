"""Users and memberships: creation, sign-in checks, who belongs where with which role."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Membership, User
from app.accounts.passwords import MIN_LENGTH, hash_password, verify_password
from app.workspaces.models import Workspace

ROLES = ("admin", "agent")


class AccountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    workspace: Workspace
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalize_email(email)))  # type: ignore[arg-type]
    return result.scalar_one_or_none()


async def set_password(session: AsyncSession, email: str, password: str) -> User:
    """Give the user a new password (the command line's way to replace a known one)."""
    user = await user_by_email(session, email)
    if user is None:
        raise AccountError(f"no user {normalize_email(email)!r}")
    if len(password) < MIN_LENGTH:
        raise AccountError(f"a password needs at least {MIN_LENGTH} characters")
    user.password_hash = hash_password(password)
    session.add(user)
    await session.flush()
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    workspace: Workspace,
    role: str,
    name: str | None = None,
) -> User:
    """Create the user (or reuse one with that email) and give them a role in the workspace."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise AccountError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    user = await user_by_email(session, email)
    if user is None:
        if len(password) < MIN_LENGTH:
            raise AccountError(f"a password needs at least {MIN_LENGTH} characters")
        user = User(
            email=email,
            name=(name or email.split("@")[0]).strip()[:120],
            password_hash=hash_password(password),
        )
        session.add(user)
        await session.flush()
    assert user.id is not None and workspace.id is not None
    session.add(Membership(user_id=user.id, workspace_id=workspace.id, role=role))
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AccountError(f"{email} is already a member of {workspace.name}") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    return user if ok else None


async def workspaces_of(session: AsyncSession, user_id: int) -> list[WorkspaceAccess]:
    m = Membership.__table__  # type: ignore[attr-defined]
    w = Workspace.__table__  # type: ignore[attr-defined]
    rows = await session.execute(
        select(Workspace, m.c.role)
        .join(m, m.c.workspace_id == w.c.id)
        .where(m.c.user_id == user_id)
        .order_by(w.c.id)
    )
    return [WorkspaceAccess(workspace=ws, role=role) for ws, role in rows]


async def members_of(session: AsyncSession, workspace_id: int) -> list[User]:
    rows = await session.execute(
        select(User)
        .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
        .where(Membership.workspace_id == workspace_id)  # type: ignore[arg-type]
        .order_by(func.lower(User.name))
    )
    return list(rows.scalars())


def is_member(conn: Connection, workspace_id: int, user_id: int) -> bool:
    m = Membership.__table__  # type: ignore[attr-defined]
    found = conn.execute(
        select(m.c.id).where(m.c.workspace_id == workspace_id, m.c.user_id == user_id)
    )
    return found.first() is not None

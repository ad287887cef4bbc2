"""Is this server safe to expose? The rule `leadboard check` and `leadboard serve` both apply.

A server reachable beyond loopback (it listens on another address, or PUBLIC_URL names another
host or https) must not run with what anyone can read in this repository: the development
SECRET_KEY (sessions and CSRF tokens could be forged), the demo user's published password, or
the demo workspace's published webhook secret (anyone could post leads into it). On loopback all
of that is the point of `make run`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.accounts.passwords import verify_password
from app.accounts.services import user_by_email
from app.db import Database
from app.settings import DEV_SECRET_KEY, Settings
from app.workspaces.services import (
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    DEMO_WEBHOOK_SECRET,
    list_workspaces,
)

MIN_SECRET_LENGTH = 32


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume others can reach it


def exposed(settings: Settings, host: str) -> bool:
    """Reachable beyond this machine: listening elsewhere, or announced as another URL."""
    public = urlsplit(settings.public_url)
    return (
        not is_loopback(host)
        or public.scheme == "https"
        or not is_loopback(public.hostname or "localhost")
    )


def demo_wanted(settings: Settings, host: str) -> bool:
    """DEMO_WORKSPACE unset: on only for a server on loopback (`make run`)."""
    if settings.demo_workspace is not None:
        return settings.demo_workspace
    return not exposed(settings, host)


def settings_problems(settings: Settings, host: str) -> list[str]:
    if not exposed(settings, host):
        return []
    problems = []
    if settings.secret_key == DEV_SECRET_KEY:
        problems.append(
            "SECRET_KEY is the development value from the source code: set SECRET_KEY to a long "
            "random string (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    elif len(settings.secret_key) < MIN_SECRET_LENGTH:
        problems.append(f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
    if demo_wanted(settings, host):
        problems.append(
            "DEMO_WORKSPACE is on: an empty database would get the demo user with its published "
            "password; set DEMO_WORKSPACE=0"
        )
    return problems


async def database_problems(db: Database) -> list[str]:
    """What the database holds that anyone could sign in or post with."""
    problems = []
    async with db.session() as session:
        demo_user = await user_by_email(session, DEMO_USER_EMAIL)
        demo_workspaces = [
            ws.slug
            for ws in await list_workspaces(session)
            if ws.webhook_secret == DEMO_WEBHOOK_SECRET
        ]
    if demo_user is not None and verify_password(demo_user.password_hash, DEMO_USER_PASSWORD):
        problems.append(
            f"the user {DEMO_USER_EMAIL} still has the demo password published in the README: "
            f"`leadboard user set-password --email {DEMO_USER_EMAIL}`"
        )
    for slug in demo_workspaces:
        problems.append(
            f"workspace {slug!r} uses the published demo webhook secret: rotate it on its "
            "settings page, then set the new one in Kapso"
        )
    return problems


async def deployment_problems(settings: Settings, db: Database, host: str) -> list[str]:
    """Everything that makes this server unsafe to expose; [] on loopback."""
    problems = settings_problems(settings, host)
    if exposed(settings, host):
        problems += await database_problems(db)
    return problems

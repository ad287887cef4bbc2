"""The `leadboard` command: migrate, serve, workspace create, demo."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.passwords import generate_password
from app.accounts.services import ROLES, AccountError, create_user, set_password
from app.db import Database
from app.demo import ensure_demo
from app.deploy import demo_wanted, deployment_problems, exposed
from app.ingest.samples import TrafficGenerator
from app.settings import get_settings
from app.workspaces.models import Workspace
from app.workspaces.services import (
    DEMO_PHONE_NUMBER_ID,
    DEMO_SARAH_KEY,
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    DEMO_WEBHOOK_SECRET,
    NewWorkspace,
    WorkspaceError,
    by_phone_number_id,
    by_slug,
    create_workspace,
    list_workspaces,
    set_sarah_key,
)

console = Console()


@click.group()
def main() -> None:
    """Leadboard: a live lead board for WhatsApp sales teams."""


@main.command()
def migrate() -> None:
    """Apply database migrations."""
    from app.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    console.print(f"[green]Database is up to date[/] ({_safe_url(settings.database_url)})")


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="uvicorn worker processes, sharing the database (and Redis when REDIS_URL is set).",
)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations first.")
def serve(host: str, port: int, workers: int, reload: bool, no_migrate: bool) -> None:
    """Run the web app with uvicorn.

    What must happen once happens here, before uvicorn starts any worker: migrations, the
    start-up safety check, the demo workspace. The in-process schedule (no REDIS_URL) then runs in
    one worker at a time (app/singleton.py).
    """
    import uvicorn

    from app.migrate import upgrade

    if reload and workers > 1:
        raise click.UsageError(
            "--reload runs one process and restarts it on code changes; it cannot run "
            f"--workers {workers}. Drop one of them.",
        )
    settings = get_settings()
    if not no_migrate:
        upgrade(settings.database_url)
    _refuse_if_unsafe(host)
    if demo_wanted(settings, host):
        demo = asyncio.run(_ensure_demo())
        if demo is not None:
            _print_workspace(demo, f"http://{host}:{port}", created=True, sarah_key=DEMO_SARAH_KEY)
            console.print(
                f"  Sign in at http://{host}:{port}/login as "
                f"[bold]{DEMO_USER_EMAIL}[/] / [bold]{DEMO_USER_PASSWORD}[/]"
            )
    console.print(
        f"Leadboard on [bold]http://{host}:{port}[/] · "
        f"database {_safe_url(settings.database_url)} · "
        f"broker {'redis' if settings.redis_url else 'in-process'}"
        + (f" · {workers} worker processes" if workers > 1 else "")
    )
    uvicorn.run(
        # An import string and a factory: each worker process builds its own app.
        "app.asgi:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        # Templates and catalogues are read once per process: a change restarts it.
        reload_includes=["*.html", "*.po"] if reload else None,
        timeout_graceful_shutdown=3,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _unsafe(host: str) -> list[str]:
    settings = get_settings()

    async def run() -> list[str]:
        db = Database(settings.database_url)
        try:
            return await deployment_problems(settings, db, host)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _refuse_if_unsafe(host: str) -> None:
    problems = _unsafe(host)
    if problems:
        console.print(
            f"[red]Refusing to serve on {host} (reachable beyond this machine) with what anyone "
            "can read in the source:[/]"
        )
        for problem in problems:
            console.print(f"  - {problem}")
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where serve would listen.")
def check(host: str) -> None:
    """Is this configuration safe to expose? Exit 1 with the reasons when it is not."""
    from app.migrate import upgrade

    upgrade(get_settings().database_url)
    problems = _unsafe(host)
    for problem in problems:
        console.print(f"[red]unsafe:[/] {problem}")
    if problems:
        sys.exit(1)
    where = "loopback only" if not exposed(get_settings(), host) else f"{host}, exposed"
    console.print(f"[green]OK[/] ({where})")


async def _ensure_demo() -> Workspace | None:
    db = Database(get_settings().database_url)
    try:
        async with db.write() as session:
            return await ensure_demo(session)
    finally:
        await db.dispose()


def _print_workspace(
    workspace: Workspace, base_url: str, *, created: bool, sarah_key: str | None = None
) -> None:
    verb = "Created" if created else "Workspace"
    console.print(f"[green]{verb} workspace[/] [bold]{workspace.name}[/] (slug {workspace.slug})")
    console.print(f"  Kapso phone_number_id: {workspace.kapso_phone_number_id}")
    console.print(f"  Webhook URL:           {base_url}/webhooks/kapso")
    console.print(f"  Webhook secret:        {workspace.webhook_secret}")
    if sarah_key:
        console.print(f"  Sarah state URL:       {base_url}/sarah/state")
        console.print(f"  Sarah key (shown once; Authorization: Bearer ...): {sarah_key}")


@main.group()
def workspace() -> None:
    """Manage workspaces."""


@workspace.command("create")
@click.option("--name", required=True, help="The team's name, shown on the board.")
@click.option(
    "--kapso-phone-number-id", required=True, help="Kapso's phone_number_id for the number."
)
@click.option(
    "--webhook-secret", default=None, help="Kapso webhook secret (generated when omitted)."
)
@click.option("--meta-app-secret", default=None, help="Meta app secret for /webhooks/whatsapp.")
@click.option("--meta-verify-token", default=None, help="Verify token for Meta's GET handshake.")
@click.option("--sarah-key", default=None, help="The bot's API key (generated when omitted).")
@click.option("--timezone", "tz", default="Asia/Jakarta", show_default=True)
def workspace_create(
    name: str,
    kapso_phone_number_id: str,
    webhook_secret: str | None,
    meta_app_secret: str | None,
    meta_verify_token: str | None,
    sarah_key: str | None,
    tz: str,
) -> None:
    """Create a workspace and print its webhook URL, secret and Sarah key."""
    from app.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)

    async def run() -> NewWorkspace:
        db = Database(settings.database_url)
        try:
            async with db.write() as session:
                return await create_workspace(
                    session,
                    name=name,
                    kapso_phone_number_id=kapso_phone_number_id,
                    webhook_secret=webhook_secret,
                    meta_app_secret=meta_app_secret,
                    meta_verify_token=meta_verify_token,
                    timezone=tz,
                    sarah_key=sarah_key,
                )
        finally:
            await db.dispose()

    try:
        created = asyncio.run(run())
    except WorkspaceError as exc:
        console.print(f"[red]{exc}[/]")
        sys.exit(1)
    _print_workspace(
        created.workspace, settings.public_url, created=True, sarah_key=created.sarah_key
    )


@workspace.command("rotate-key")
@click.option(
    "--workspace", "slug", required=True, help="The workspace's slug (see `workspace list`)."
)
@click.option("--sarah-key", default=None, help="The new key (generated when omitted).")
def workspace_rotate_key(slug: str, sarah_key: str | None) -> None:
    """Replace the workspace's Sarah key; the old key stops working within seconds."""
    settings = get_settings()

    async def run() -> str | None:
        db = Database(settings.database_url)
        try:
            async with db.write() as session:
                ws = await by_slug(session, slug)
                return None if ws is None else await set_sarah_key(session, ws, sarah_key)
        finally:
            await db.dispose()

    try:
        key = asyncio.run(run())
    except WorkspaceError as exc:
        console.print(f"[red]{exc}[/]")
        sys.exit(1)
    if key is None:
        console.print(f"[red]No workspace with slug {slug!r}[/]")
        sys.exit(1)
    console.print(f"New Sarah key for {slug} (shown once): {key}")


@workspace.command("list")
def workspace_list() -> None:
    """List workspaces."""

    async def run() -> list[Workspace]:
        db = Database(get_settings().database_url)
        try:
            async with db.session() as session:
                return await list_workspaces(session)
        finally:
            await db.dispose()

    for ws in asyncio.run(run()):
        console.print(f"{ws.id}\t{ws.slug}\t{ws.name}\tphone_number_id={ws.kapso_phone_number_id}")


@main.group()
def user() -> None:
    """Manage users."""


def _password_or_generated(password: str | None) -> tuple[str, bool]:
    """The password given, else prompted on a terminal, else generated (True: print it once)."""
    if password is not None:
        return password, False
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True), False
    return generate_password(), True


def _account_outcome(run: Callable[[], Coroutine[Any, Any, str]], generated: str | None) -> None:
    """Run an account command: its message, or its AccountError and exit 1; a generated
    password is shown once."""
    try:
        console.print(f"[green]{asyncio.run(run())}[/]")
    except AccountError as exc:
        console.print(f"[red]{exc}[/]")
        sys.exit(1)
    if generated is not None:
        console.print(f"Password (shown once): {generated}")


@user.command("create")
@click.option("--email", required=True)
@click.option("--workspace", "workspace_ref", required=True, help="Workspace name or slug.")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option("--name", default=None, help="Display name (defaults to the email's local part).")
@click.option(
    "--password", default=None, help="Prompted when omitted on a terminal, else generated."
)
def user_create(
    email: str, workspace_ref: str, role: str, name: str | None, password: str | None
) -> None:
    """Create a user (or add an existing one to another workspace)."""
    from app.migrate import upgrade
    from app.workspaces.services import slugify

    settings = get_settings()
    upgrade(settings.database_url)
    password, generated = _password_or_generated(password)

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            async with db.write() as session:
                ws = await by_slug(session, slugify(workspace_ref)) or await by_slug(
                    session, workspace_ref
                )
                if ws is None:
                    raise AccountError(f"no workspace {workspace_ref!r} (see `workspace list`)")
                created = await create_user(
                    session,
                    email=email,
                    password=password,
                    workspace=ws,
                    role=role,
                    name=name,
                )
                return f"{created.email} is now {role} of {ws.name}"
        finally:
            await db.dispose()

    _account_outcome(run, password if generated else None)


@user.command("set-password")
@click.option("--email", required=True)
@click.option(
    "--password", default=None, help="Prompted when omitted on a terminal, else generated."
)
def user_set_password(email: str, password: str | None) -> None:
    """Give a user a new password (e.g. the demo user's published one, before exposing)."""
    settings = get_settings()
    password, generated = _password_or_generated(password)

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            async with db.write() as session:
                changed = await set_password(session, email, password)
                return f"New password set for {changed.email}"
        finally:
            await db.dispose()

    _account_outcome(run, password if generated else None)


async def _lookup_secret(phone_number_id: str) -> str | None:
    db = Database(get_settings().database_url)
    try:
        async with db.session() as session:
            ws = await by_phone_number_id(session, phone_number_id)
            return ws.webhook_secret if ws else None
    finally:
        await db.dispose()


@main.command()
@click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="A running Leadboard."
)
@click.option("--rate", default=5.0, show_default=True, help="Deliveries per second.")
@click.option("--duration", default=30.0, show_default=True, help="Seconds to run.")
@click.option("--leads", default=40, show_default=True, help="How many different people write.")
@click.option("--phone-number-id", default=DEMO_PHONE_NUMBER_ID, show_default=True)
@click.option(
    "--secret", default=None, help="Webhook secret (read from the local database if omitted)."
)
@click.option("--seed", default=None, type=int, help="Random seed for repeatable traffic.")
def demo(
    url: str,
    rate: float,
    duration: float,
    leads: int,
    phone_number_id: str,
    secret: str | None,
    seed: int | None,
) -> None:
    """Post a stream of realistic signed Kapso webhooks to a running server."""
    if not secret:
        try:
            secret = asyncio.run(_lookup_secret(phone_number_id))
        except SQLAlchemyError as exc:
            console.print(
                "[red]Could not read the webhook secret from the local database "
                f"({_safe_url(get_settings().database_url)}: {type(exc).__name__}).[/] "
                f"Pass --secret (the demo workspace's is {DEMO_WEBHOOK_SECRET})."
            )
            sys.exit(1)
    if not secret:
        console.print(
            f"[red]No workspace with phone_number_id {phone_number_id}; pass --secret.[/]"
        )
        sys.exit(1)
    generator = TrafficGenerator(phone_number_id, secret, leads=leads, seed=seed)
    total = max(1, int(rate * duration))
    outcomes: dict[str, int] = {}
    interval = 1.0 / rate if rate > 0 else 0.0
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        Progress(
            TextColumn("[bold]demo[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[summary]}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("post", total=total, summary="")
        started = time.monotonic()
        for i in range(total):
            delivery = generator.next()
            try:
                response = client.post(
                    "/webhooks/kapso", content=delivery.body, headers=delivery.headers
                )
                key = str(response.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            outcomes[key] = outcomes.get(key, 0) + 1
            summary = " ".join(f"{k}:{v}" for k, v in sorted(outcomes.items()))
            progress.update(task, advance=1, summary=summary)
            delay = started + (i + 1) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    console.print(f"Posted {total} deliveries: {outcomes}")
    if any(k != "200" for k in outcomes):
        sys.exit(1)


@main.command()
def worker() -> None:
    """Run the arq worker: reconciliation cron, inbox retries, housekeeping (needs REDIS_URL)."""
    settings = get_settings()
    if not settings.redis_url:
        console.print(
            "[red]The worker needs REDIS_URL.[/] Without Redis, `leadboard serve` runs the same "
            "jobs on an in-process schedule."
        )
        sys.exit(1)
    import logging.config

    from arq import run_worker
    from arq.logs import default_log_config

    from workers.settings import WorkerSettings

    logging.config.dictConfig(default_log_config(verbose=settings.log_level == "DEBUG"))

    console.print(
        f"Worker on {_safe_url(settings.redis_url)} · database {_safe_url(settings.database_url)}"
        f" · reconciliation every {settings.reconcile_interval_minutes} min"
    )
    run_worker(WorkerSettings)  # type: ignore[arg-type]


@main.command()
@click.option("--workspace", "slug", default=None, help="Only this workspace (slug).")
def reconcile(slug: str | None) -> None:
    """Flag stale leads now (what the hourly job does) and print what each run did."""
    from app.live.broker import create_broker
    from app.reconcile.services import ReconcileReport, reconcile_all, reconcile_workspace

    settings = get_settings()

    async def run() -> ReconcileReport | None:
        db = Database(settings.database_url)
        broker = create_broker(settings.redis_url)  # publish-only: open boards update live
        try:
            if slug is None:
                return await reconcile_all(db, broker)
            async with db.session() as session:
                ws = await by_slug(session, slug)
            if ws is None:
                return None
            return ReconcileReport(runs=(await reconcile_workspace(db, ws, broker=broker),))
        finally:
            await broker.stop()
            await db.dispose()

    report = asyncio.run(run())
    if report is None:
        console.print(f"[red]No workspace with slug {slug!r}[/]")
        sys.exit(1)
    if not report.runs:
        console.print("No workspace with a Kapso phone number to reconcile.")
    for r in report.runs:
        outcome = f"[red]failed: {r.error}[/]" if r.error else "ok"
        console.print(
            f"{r.workspace_slug}: checked {r.checked}, stale {r.stale}, flagged {r.flagged}"
            f" in {r.duration_ms} ms · {outcome}"
        )
    console.print(
        f"Total: {len(report.runs)} workspaces, {report.checked} checked, {report.stale} stale,"
        f" {report.flagged} flagged, {report.failed} failed"
    )
    if report.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

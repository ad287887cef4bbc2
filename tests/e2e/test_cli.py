"""The `leadboard` command as a person types it: real processes, a real SQLite file.

`workspace create` prints what Kapso and Sarah need and the printed values work; `demo` posts
signed traffic to a running server that lands on its board; mistakes get a clear message and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from pathlib import Path

from tests.e2e.support import PROJECT_ROOT, LiveServer, leadboard_command


def leadboard(db_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "PUBLIC_URL": "https://leads.example.id",
        "COLUMNS": "200",  # no wrapped lines in rich's output
        **env,
    }
    return subprocess.run(
        [leadboard_command(), *args],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def printed(output: str, label: str) -> str:
    found = re.search(rf"{re.escape(label)}\s*(\S+)", output)
    assert found, f"{label!r} not in:\n{output}"
    return found.group(1)


def test_workspace_create_prints_working_credentials_and_list_rotate_show_them(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cli.sqlite"

    created = leadboard(
        db, "workspace", "create", "--name", "Toko Maju", "--kapso-phone-number-id", "5550001"
    )

    assert created.returncode == 0, created.stderr
    assert "https://leads.example.id/webhooks/kapso" in created.stdout
    secret = printed(created.stdout, "Webhook secret:")
    sarah_key = printed(created.stdout, "Sarah key (shown once; Authorization: Bearer ...):")
    assert len(secret) >= 20 and len(sarah_key) >= 20
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "SELECT webhook_secret, sarah_key_hash FROM workspaces WHERE slug = 'toko-maju'"
        ).fetchone()
    assert stored[0] == secret
    assert sarah_key not in (stored[1] or "")  # the key is kept hashed, never as given

    listed = leadboard(db, "workspace", "list")
    assert listed.returncode == 0
    assert "toko-maju" in listed.stdout and "phone_number_id=5550001" in listed.stdout

    rotated = leadboard(db, "workspace", "rotate-key", "--workspace", "toko-maju")
    assert rotated.returncode == 0
    assert printed(rotated.stdout, "(shown once):") != sarah_key


def test_mistakes_get_a_clear_message_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite"
    first = leadboard(db, "workspace", "create", "--name", "A", "--kapso-phone-number-id", "77")
    assert first.returncode == 0

    again = leadboard(db, "workspace", "create", "--name", "B", "--kapso-phone-number-id", "77")
    unknown = leadboard(db, "workspace", "rotate-key", "--workspace", "nobody")
    no_user_ws = leadboard(db, "user", "create", "--email", "a@b.id", "--workspace", "nowhere")
    no_database = leadboard(
        tmp_path / "missing" / "none.sqlite", "demo", "--rate", "1", "--duration", "1"
    )

    for result in (again, unknown, no_user_ws, no_database):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    assert "phone number id" in again.stdout
    assert "No workspace with slug 'nobody'" in unknown.stdout
    assert "no workspace 'nowhere'" in no_user_ws.stdout
    assert "Pass --secret" in " ".join(no_database.stdout.split())


async def test_demo_posts_signed_traffic_that_lands_on_the_board(server: LiveServer) -> None:
    result = leadboard(
        server.db_path,
        "demo",
        "--url",
        server.base_url,
        "--rate",
        "50",
        "--duration",
        "1",
        "--leads",
        "5",
        "--seed",
        "7",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Posted 50 deliveries: {'200': 50}" in " ".join(result.stdout.split())
    with sqlite3.connect(server.db_path) as conn:
        processed = conn.execute(
            "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NOT NULL"
        ).fetchone()[0]
        leads = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
    assert processed == 50
    assert 1 <= leads <= 5


def test_check_and_serve_refuse_published_secrets_on_an_exposed_server(tmp_path: Path) -> None:
    db = tmp_path / "exposed.sqlite"
    # PUBLIC_URL is https here: reachable beyond loopback, whatever the address.
    checked = leadboard(db, "check", SECRET_KEY="", DEMO_WORKSPACE="")
    assert checked.returncode == 1
    assert "SECRET_KEY is the development value" in checked.stdout
    assert "DEMO_WORKSPACE is on" not in checked.stdout  # unset: off for an exposed server

    refused = leadboard(db, "serve", "--host", "0.0.0.0", "--port", "1", SECRET_KEY="")
    assert refused.returncode == 1 and "Refusing to serve on 0.0.0.0" in refused.stdout
    assert "Uvicorn running" not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr

    safe = {"SECRET_KEY": "s" * 48, "DEMO_WORKSPACE": "0"}
    assert leadboard(db, "check", "--host", "0.0.0.0", **safe).returncode == 0
    # The demo's published credentials in the database are refused too: fine on loopback,
    # refused once exposed.
    demo_db = tmp_path / "demo.sqlite"
    seeded = leadboard(
        demo_db,
        "workspace",
        "create",
        "--name",
        "Demo",
        "--kapso-phone-number-id",
        "77",
        "--webhook-secret",
        "demo-webhook-secret",
        **safe,
    )
    assert seeded.returncode == 0, seeded.stdout
    local = {**safe, "PUBLIC_URL": "http://127.0.0.1:8000"}
    assert leadboard(demo_db, "check", **local).returncode == 0
    exposed = leadboard(demo_db, "check", "--host", "0.0.0.0", **safe)
    assert exposed.returncode == 1 and "published demo webhook secret" in exposed.stdout


def test_user_create_and_set_password_generate_a_password_shown_once(tmp_path: Path) -> None:
    from app.accounts.passwords import verify_password

    db = tmp_path / "users.sqlite"
    assert (
        leadboard(
            db, "workspace", "create", "--name", "Toko", "--kapso-phone-number-id", "9"
        ).returncode
        == 0
    )
    created = leadboard(db, "user", "create", "--email", "rina@toko.id", "--workspace", "toko")
    assert created.returncode == 0, created.stdout
    first = printed(created.stdout, "Password (shown once):")
    changed = leadboard(
        db, "user", "set-password", "--email", "rina@toko.id", "--password", "tujuh-belas-17"
    )
    assert changed.returncode == 0 and "New password set for rina@toko.id" in changed.stdout
    assert "shown once" not in changed.stdout  # given, not generated
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute(
            "SELECT password_hash FROM users WHERE email = 'rina@toko.id'"
        ).fetchone()
    assert verify_password(stored, "tujuh-belas-17") and not verify_password(stored, first)
    unknown = leadboard(
        db, "user", "set-password", "--email", "nobody@toko.id", "--password", "x" * 12
    )
    assert unknown.returncode == 1 and "no user 'nobody@toko.id'" in unknown.stdout
    assert "Traceback" not in unknown.stdout + unknown.stderr

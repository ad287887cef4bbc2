"""Workspace isolation, roles, untrusted text, CSRF and CSP, in a real browser (issue 6).

One server for the module. Before it starts, the `leadboard` CLI creates two workspaces and three
people in its database: Alice (agent of Alpha), Bob (agent of Beta) and Carol (admin of Alpha,
agent of Beta). Leads arrive through each workspace's own signed webhooks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Page, expect

from app.ingest.samples import SampleLead
from tests.e2e.support import (
    LiveServer,
    lead_id_for,
    post_inbound_to,
    post_sarah,
    prepared_server,
    run_cli,
    save_screenshot,
    sign_in_as,
)

pytestmark = pytest.mark.e2e

LIVE_WAIT = 10_000
LEAD_ROWS = "#lead-rows > tr.lead-row"


@dataclass(frozen=True)
class Tenant:
    name: str
    slug: str
    phone_number_id: str
    webhook_secret: str
    sarah_key: str


ALPHA = Tenant("Alpha Realty", "alpha-realty", "111000111", "alpha-webhook-secret-1", "alpha-key-1")
BETA = Tenant("Beta Homes", "beta-homes", "222000222", "beta-webhook-secret-22", "beta-key-22")
ALICE = ("alice@alpha.test", "alice-password-1")  # agent of Alpha
BOB = ("bob@beta.test", "bob-password-22")  # agent of Beta
CAROL = ("carol@both.test", "carol-password-3")  # admin of Alpha, agent of Beta

XSS_NAME = '<img src=x onerror="window.__xssName=1">'
XSS_BODY = '<script>window.__xssBody=1</script><svg onload="window.__xssBody=2">'
XSS_NOTE = '<img src=x onerror="window.__xssNote=1"><script>window.__xssNote=2</script>'
XSS_FLAGS = "[window.__xssName, window.__xssBody, window.__xssNote].map(v => typeof v)"


@dataclass(frozen=True)
class Tenants:
    server: LiveServer
    alpha_lead: SampleLead
    beta_lead: SampleLead
    xss_lead: SampleLead
    alpha_id: int
    beta_id: int
    xss_id: int


def lead(name: str, phone: str) -> SampleLead:
    return SampleLead(phone=phone, name=name, conversation_id=str(uuid.uuid4()))


def cli_setup() -> list[list[str]]:
    commands: list[list[str]] = []
    for t in (ALPHA, BETA):
        commands.append(
            [
                "workspace",
                "create",
                "--name",
                t.name,
                "--kapso-phone-number-id",
                t.phone_number_id,
                "--webhook-secret",
                t.webhook_secret,
                "--sarah-key",
                t.sarah_key,
            ]
        )
    for (email, password), slug, role in (
        (ALICE, ALPHA.slug, "agent"),
        (BOB, BETA.slug, "agent"),
        (CAROL, ALPHA.slug, "admin"),
        (CAROL, BETA.slug, "agent"),
    ):
        user = ["--email", email, "--password", password, "--workspace", slug, "--role", role]
        commands.append(["user", "create", *user])
    return commands


@pytest.fixture(scope="module")
async def tenants(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> AsyncIterator[Tenants]:
    async with prepared_server(tmp_path_factory.mktemp("tenants"), redis_url) as server:
        output = await run_cli(server.database_url, cli_setup())
        assert "carol@both.test is now agent of Beta Homes" in output, output
        await server.start()

        alpha_lead = lead("Yusuf Hakim", "6281100000001")
        beta_lead = lead("Bambang Rahardjo", "6281100000002")
        xss_lead = lead(XSS_NAME, "6281100000003")
        for sample, tenant, text in (
            (alpha_lead, ALPHA, "Mau tanya unit di Depok"),
            (beta_lead, BETA, "Rahasia Beta: anggaran 2 miliar"),
            (xss_lead, ALPHA, XSS_BODY),
        ):
            await post_inbound_to(
                server,
                sample,
                text,
                phone_number_id=tenant.phone_number_id,
                secret=tenant.webhook_secret,
            )
        yield Tenants(
            server=server,
            alpha_lead=alpha_lead,
            beta_lead=beta_lead,
            xss_lead=xss_lead,
            alpha_id=await lead_id_for(server, alpha_lead.phone, key=ALPHA.sarah_key),
            beta_id=await lead_id_for(server, beta_lead.phone, key=BETA.sarah_key),
            xss_id=await lead_id_for(server, xss_lead.phone, key=ALPHA.sarah_key),
        )


def unexpected(page_errors: list[str]) -> list[str]:
    """Page errors other than the browser's note about the 403/404 answers a test asked for."""
    provoked = re.compile(r"Failed to load resource: .* status of (403|404) ")
    return [e for e in page_errors if not provoked.search(e)]


async def status_of(page: Page, url: str) -> int:
    """The status of a GET from the page (its cookies), without reading a streamed body."""
    status: int = await page.evaluate(
        "async url => { const r = await fetch(url); const s = r.status;"
        " if (r.body) r.body.cancel(); return s; }",
        url,
    )
    return status


async def test_agent_sees_only_own_workspace(
    tenants: Tenants, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    base = tenants.server.base_url
    await sign_in_as(page, tenants.server, *ALICE)
    await expect(page.locator(".workspace-name")).to_have_text(ALPHA.name)
    await expect(page.locator("nav.workspace-switch")).to_have_count(0)
    await expect(page.locator(LEAD_ROWS, has_text=tenants.alpha_lead.name)).to_have_count(1)
    await expect(page.locator(LEAD_ROWS)).to_have_count(2)  # Alpha's two leads, nothing else
    await expect(page.get_by_text(tenants.beta_lead.name)).to_have_count(0)
    await expect(page.get_by_text("Rahasia Beta")).to_have_count(0)
    await save_screenshot(page, request.node.name)

    # Searching for Beta's lead finds nothing either.
    await page.locator("#search").fill(tenants.beta_lead.name)
    await expect(page).to_have_url(re.compile(r"[?&]q=Bambang"))
    await expect(page.locator("#empty-state")).to_be_visible()
    await expect(page.locator(LEAD_ROWS)).to_have_count(0)

    # Beta's lead page and Beta's board are "not found", the same as ids that do not exist.
    response = await page.goto(f"{base}/leads/{tenants.beta_id}")
    assert response is not None and response.status == 404
    assert tenants.beta_lead.name not in await page.content()
    response = await page.goto(f"{base}/leads/999999")
    assert response is not None and response.status == 404
    response = await page.goto(f"{base}/?ws={BETA.slug}")
    assert response is not None and response.status == 404
    assert tenants.beta_lead.name not in await page.content()

    # Nor do Beta's live stream and export open for her.
    await page.goto(f"{base}/leads/{tenants.alpha_id}")
    await expect(page.locator(".lead-title h1")).to_have_text(tenants.alpha_lead.name)
    assert await status_of(page, f"/events?ws={BETA.slug}") == 404
    assert await status_of(page, f"/export.csv?ws={BETA.slug}") == 404
    assert await status_of(page, f"/leads/{tenants.beta_id}") == 404
    # Still in her own workspace afterwards.
    await page.goto(base + "/")
    await expect(page.locator(".workspace-name")).to_have_text(ALPHA.name)
    assert unexpected(page_errors) == []


async def test_member_of_two_workspaces_switches(
    tenants: Tenants, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    base = tenants.server.base_url
    await sign_in_as(page, tenants.server, *CAROL)
    switch = page.locator("nav.workspace-switch")
    await expect(switch).to_be_visible()
    await expect(switch.get_by_role("link")).to_have_text([ALPHA.name, BETA.name])
    await expect(switch.locator("a[aria-current=page]")).to_have_text(ALPHA.name)
    await expect(page.locator(LEAD_ROWS, has_text=tenants.alpha_lead.name)).to_have_count(1)
    await expect(page.get_by_text(tenants.beta_lead.name)).to_have_count(0)
    await expect(page.locator(".user-menu").get_by_role("link", name="Settings")).to_be_visible()
    await save_screenshot(page, f"{request.node.name}_alpha")

    await switch.get_by_role("link", name=BETA.name).click()
    await expect(page).to_have_url(f"{base}/?ws={BETA.slug}")
    await expect(page.locator(".workspace-name")).to_have_text(BETA.name)
    await expect(switch.locator("a[aria-current=page]")).to_have_text(BETA.name)
    await expect(page.locator(LEAD_ROWS)).to_have_count(1)
    await expect(page.locator(LEAD_ROWS, has_text=tenants.beta_lead.name)).to_have_count(1)
    await expect(page.get_by_text(tenants.alpha_lead.name)).to_have_count(0)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    # The choice sticks: the plain board URL stays on Beta, and Beta's lead opens.
    await page.goto(base + "/")
    await expect(page.locator(".workspace-name")).to_have_text(BETA.name)
    response = await page.goto(f"{base}/leads/{tenants.beta_id}")
    assert response is not None and response.status == 200
    # Her role is per workspace: an agent in Beta, so no settings there.
    await expect(page.locator(".user-menu").get_by_role("link", name="Settings")).to_have_count(0)
    response = await page.goto(f"{base}/settings/")
    assert response is not None and response.status == 403
    await page.goto(base + "/")
    await save_screenshot(page, request.node.name)

    await switch.get_by_role("link", name=ALPHA.name).click()
    await expect(page.locator(".workspace-name")).to_have_text(ALPHA.name)
    await expect(page.locator(LEAD_ROWS, has_text=tenants.alpha_lead.name)).to_have_count(1)
    response = await page.goto(f"{base}/settings/")
    assert response is not None and response.status == 200
    await expect(page.locator(".settings h1")).to_contain_text(ALPHA.name)
    assert unexpected(page_errors) == []


async def test_agent_gets_403_on_settings(
    tenants: Tenants, page: Page, request: pytest.FixtureRequest
) -> None:
    base = tenants.server.base_url
    await sign_in_as(page, tenants.server, *ALICE)
    await expect(page.locator(".user-menu").get_by_role("link", name="Settings")).to_have_count(0)
    for path in ("/settings/", "/settings"):
        response = await page.goto(base + path)
        assert response is not None and response.status == 403, path
        assert "secret" not in (await page.content()).lower()
    # Posting to it is refused as well (with a valid CSRF token: the role is what fails).
    await page.goto(base + "/")
    status = await page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
            const r = await fetch('/settings/rotate-sarah-key', {
                method: 'POST', headers: {'X-CSRFToken': token}});
            return r.status;
        }"""
    )
    assert status == 403
    await page.goto(base + "/settings/")
    await save_screenshot(page, request.node.name)


async def test_untrusted_text_never_executes(
    tenants: Tenants, page: Page, page_errors: list[str], request: pytest.FixtureRequest
) -> None:
    server = tenants.server
    await sign_in_as(page, server, *ALICE)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    row = page.locator(f"#lead-{tenants.xss_id}")
    await expect(row.locator(".lead-name")).to_have_text(XSS_NAME)
    await expect(row.locator(".preview")).to_have_text(XSS_BODY)
    await expect(row.locator("img, script, svg")).to_have_count(0)

    # The name travels in a live event and a hot-lead toast too.
    await post_sarah(
        server,
        tenants.xss_lead.phone,
        state="handoff",
        score=95,
        temperature="hot",
        key=ALPHA.sarah_key,
    )
    toast = page.locator("#toasts .toast")
    await expect(toast).to_contain_text(XSS_NAME, timeout=LIVE_WAIT)
    await expect(toast.locator("img, script, svg")).to_have_count(0)
    await expect(row).to_have_class(re.compile(r"\bis-hot\b"), timeout=LIVE_WAIT)
    await expect(row.locator(".lead-name")).to_have_text(XSS_NAME)
    assert await page.evaluate(XSS_FLAGS) == ["undefined"] * 3
    await save_screenshot(page, f"{request.node.name}_board")

    # The lead page: name, message and a note written with markup.
    await row.locator("a.lead-name").click()
    await expect(page.locator(".lead-title h1")).to_have_text(XSS_NAME)
    await expect(page.locator("#timeline li.tl-inbound .body")).to_have_text(XSS_BODY)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_WAIT
    )
    await page.locator("#note-body").fill(XSS_NOTE)
    await page.get_by_role("button", name="Add note").click()
    note = page.locator("#timeline li.tl-note .body")
    await expect(note).to_have_text(XSS_NOTE, timeout=LIVE_WAIT)
    await page.reload()
    await expect(note).to_have_text(XSS_NOTE)
    await expect(page.locator(".lead-title h1")).to_have_text(XSS_NAME)
    await expect(page.locator("#live img, #live script, #live svg")).to_have_count(0)
    assert await page.evaluate(XSS_FLAGS) == ["undefined"] * 3
    assert page_errors == []
    await save_screenshot(page, request.node.name)


async def test_form_post_without_csrf_token_is_refused(
    tenants: Tenants, page: Page, request: pytest.FixtureRequest
) -> None:
    await sign_in_as(page, tenants.server, *ALICE, path=f"/leads/{tenants.alpha_id}")
    await expect(page.locator(".lead-title h1")).to_have_text(tenants.alpha_lead.name)
    probe = """async ([id, body, withToken]) => {
        const headers = {};
        if (withToken) {
            headers['X-CSRFToken'] =
                JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
        }
        const r = await fetch(`/leads/${id}/notes`,
            {method: 'POST', headers, body: new URLSearchParams({body})});
        return r.status;
    }"""
    assert await page.evaluate(probe, [tenants.alpha_id, "csrf-probe-refused", False]) == 403
    # The same request with the page's token goes through: the token is what was missing.
    assert await page.evaluate(probe, [tenants.alpha_id, "csrf-probe-accepted", True]) == 200
    await page.reload()
    notes = page.locator("#timeline li.tl-note .body")
    await expect(notes).to_have_text(["csrf-probe-accepted"])
    await save_screenshot(page, request.node.name)


async def test_pages_send_a_content_security_policy(
    tenants: Tenants, page: Page, request: pytest.FixtureRequest
) -> None:
    base = tenants.server.base_url
    response = await page.goto(base + "/login")
    assert response is not None
    await sign_in_as(page, tenants.server, *ALICE)
    for path in ("/login", "/", f"/leads/{tenants.alpha_id}"):
        response = await page.goto(base + path)
        assert response is not None and response.ok, path
        headers = await response.all_headers()
        csp = headers.get("content-security-policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], (path, csp)
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, (path, csp)
        assert directives.get("object-src") == ["'none'"], (path, csp)
        assert headers.get("x-content-type-options") == "nosniff", path
    # And the browser enforces it: an injected inline script does not run.
    await page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__inlineRan = 1'; document.body.appendChild(s); }"
    )
    assert await page.evaluate("typeof window.__inlineRan") == "undefined"
    await save_screenshot(page, request.node.name)

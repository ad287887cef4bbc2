"""Indonesian and English: every string has a translation, the browser's language is honoured,
the switch sticks, and live rows come out in the board's language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.i18n import TRANSLATED_VALUES, choose_language, language
from app.templating import create_environment

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "app" / "translations" / "id" / "LC_MESSAGES" / "messages.po"


def extracted_ids() -> set[str]:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(ROOT / "app"), method_map, options, keywords={"_": None, "gettext_": None, "N_": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_string_has_an_indonesian_translation() -> None:
    with CATALOGUE.open("rb") as handle:
        catalogue = {m.id: m.string for m in read_po(handle) if m.id}
    ids = extracted_ids() | set(TRANSLATED_VALUES)
    assert len(ids) > 80
    missing = sorted(i for i in ids if not catalogue.get(i))
    assert missing == [], f"translate these in {CATALOGUE}: {missing}"


def test_language_choice() -> None:
    assert choose_language(None, "id-ID,id;q=0.9,en;q=0.8") == "id"
    assert choose_language(None, "fr-FR,en;q=0.5") == "en"
    assert choose_language("id", "en-US") == "id"  # the switch wins over the browser
    assert choose_language("xx", None) == "en"


def test_templates_render_in_indonesian() -> None:
    env = create_environment()
    template = env.from_string("{{ _('Leads') }} · {{ _('needs reply') }} · {{ 1234567|number }}")
    with language("id"):
        assert template.render() == "Prospek · perlu dibalas · 1.234.567"
    assert template.render() == "Leads · needs reply · 1,234,567"
    with language("id"):
        assert env.from_string("{{ 12.5|number }}").render() == "12,5"


async def test_board_follows_browser_and_switch(
    client: AsyncTestClient[Litestar], agent: str
) -> None:
    page = await client.get("/", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert '<html lang="id">' in page.text and "Prospek" in page.text
    switched = await client.get(
        "/lang/en",
        headers={"Referer": "http://testserver.local/?status=new"},
        follow_redirects=False,
    )
    assert switched.status_code in (302, 303) and switched.headers["location"] == "/?status=new"
    page = await client.get("/", headers={"Accept-Language": "id-ID"})
    assert '<html lang="en">' in page.text and "Needs reply" in page.text
    assert (await client.get("/lang/xx")).status_code == 404


def test_template_gettext_is_jinjas_newstyle_gettext() -> None:
    """`_` in templates is cached per language but answers exactly what Jinja's own newstyle
    gettext does: translation trusted, variables escaped, `%%` a percent sign."""
    from jinja2 import Environment

    from app.i18n import gettext_, ngettext_

    ours = create_environment()
    jinjas = Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    jinjas.install_gettext_callables(gettext_, ngettext_, newstyle=True)  # type: ignore[attr-defined]
    source = (
        "{{ _('needs reply') }}|{{ _('All %(n)s in this column', n='<b>5</b>') }}|"
        "{{ _(status) }}|{{ _('100%% sure') }}|{{ _('no such message') }}"
    )
    for code in ("en", "id", "en"):
        with language(code):
            expected = jinjas.from_string(source).render(status="qualified")
            assert ours.from_string(source).render(status="qualified") == expected
    with language("id"):
        assert ours.from_string("{{ _('needs reply') }}").render() == "perlu dibalas"


def test_a_value_without_a_translation_is_text_not_markup() -> None:
    """_(value) shows stored values (a delivery status a provider sent): one the catalogue does
    not know is escaped, in both languages, where Jinja's gettext would pass it through raw."""
    template = create_environment().from_string('<span title="{{ _(s) }}">{{ _(s) }}</span>')
    hostile = '<img src=x onerror=alert(1)> "100%% %(x)s'
    for code in ("en", "id"):
        with language(code):
            html = template.render(s=hostile)
            assert "<img" not in html and "&lt;img" in html
            assert "&#34;100% %(x)s" in html


def test_status_choices_are_translated_with_the_leads_own_selected() -> None:
    template = create_environment().from_string("<select>{{ status_options(s) }}</select>")
    with language("id"):
        html = template.render(s="qualified")
    assert '<option value="qualified" selected>Terkualifikasi</option>' in html
    assert html.count("<option") == 5 and html.count("selected") == 1
    with language("en"):
        assert '<option value="new" selected>New</option>' in template.render(s="new")

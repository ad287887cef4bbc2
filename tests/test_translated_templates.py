"""Templates compiled per language: a literal _("...") is the translated text in the compiled
template itself, escaped and marked exactly as the runtime _() would; everything else (values,
variables, templates made from strings) still translates at render time."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from app.i18n import language
from app.templating import template_gettext
from app.translated_templates import (
    LiteralTranslations,
    TranslatedEnvironment,
    TranslatedLoader,
    language_of,
    translated,
)

TEMPLATE = (
    '{{ _("needs reply") }}|{{ _("a <b> & c") }}|{{ _(value) }}|{{ _("Score") ~ "!" }}|'
    '{{ _("%(n)s min ago", n=3) }}|{% include "inner.html" %}'
)


def make_env(tmp_path: Path) -> TranslatedEnvironment:
    (tmp_path / "page.html").write_text(TEMPLATE)
    (tmp_path / "inner.html").write_text('{{ _("Score") }}')
    env = TranslatedEnvironment(
        loader=TranslatedLoader(tmp_path), autoescape=True, extensions=[LiteralTranslations]
    )
    env.globals["_"] = template_gettext
    return env


def test_literal_texts_are_translated_into_the_compiled_template(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with language("id"):
        assert env.get_template("page.html").render(value="needs reply") == (
            "perlu dibalas|a &lt;b&gt; &amp; c|perlu dibalas|Skor!|3 mnt lalu|Skor"
        )
    assert env.get_template("page.html").render(value="<i>") == (
        "needs reply|a &lt;b&gt; &amp; c|&lt;i&gt;|Score!|3 min ago|Score"
    )
    source = (tmp_path / "page.html").read_text()
    code = env.compile(source, "id/page.html", raw=True)
    assert "perlu dibalas" in code and "'needs reply'" not in code  # no call left for it
    assert "'%(n)s min ago'" in code  # a call with variables stays a call


def test_each_language_has_its_own_compiled_copy(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    english = env.get_template("page.html")
    with language("id"):
        indonesian = env.get_template("page.html")
    assert (english.name, indonesian.name) == ("en/page.html", "id/page.html")
    assert env.get_template("id/page.html") is indonesian  # a named language is kept
    assert sorted(env.list_templates()) == [
        "en/inner.html",
        "en/page.html",
        "id/inner.html",
        "id/page.html",
    ]
    assert language_of("id/page.html") == "id" and language_of("page.html") is None


def test_the_runtime_translation_is_the_same_text() -> None:
    assert translated("id", "needs reply") == Markup("perlu dibalas")
    assert translated("en", "a <b>") == "a &lt;b&gt;" and isinstance(translated("en", "x"), Markup)
    with language("id"):
        assert template_gettext("needs reply") == translated("id", "needs reply")

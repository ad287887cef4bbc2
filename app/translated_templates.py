"""Templates compiled once per language, with their fixed texts translated at compile time.

A board page calls `_("...")` hundreds of times, and each call is a function call through Jinja's
context plus an escape of its result. Every such call with a single literal argument gives the
same text for a given language, so each language gets its own compiled copy of every template
(TranslatedLoader serves "id/board.html" from board.html), in which those calls are already the
translated text. Calls with variables (`_("%(n)s leads", n=...)`) or a value from the data
(`_(lead.status)`) still translate at render time, through the same `translated` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, FileSystemLoader, TemplateNotFound
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

from app.i18n import LANGUAGES, current_language, translations

_CALLS = ("_", "gettext")


@lru_cache(maxsize=4096)
def translated(language: str, message: str) -> Markup:
    """`_(message)` in `language`: the catalogue's text is ours (trusted, as Jinja trusts it);
    a message without an entry (English, or a value such as a delivery status a provider sent)
    is text, never markup."""
    text = translations(language).gettext(message)
    if text != message:
        return Markup(text) % {}
    return Markup.escape(message.replace("%%", "%"))


def language_of(template_name: str | None) -> str | None:
    """The language a template was compiled for ("id/board.html" -> "id")."""
    prefix = (template_name or "").partition("/")[0]
    return prefix if prefix in LANGUAGES else None


class LiteralTranslations(Extension):
    """Rewrites `_("text")` into the text translated for the template's language, marked safe
    exactly as `translated` marks it: `("Teks"|safe)`, which Jinja folds into a constant."""

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        language = language_of(stream.name)
        if language is None:  # a template made from a string: translated at render time
            return stream
        return _rewrite(list(stream), language)


def _rewrite(tokens: list[Token], language: str) -> Iterator[Token]:
    i = 0
    while i < len(tokens):
        token = tokens[i]
        call = tokens[i : i + 4]
        if (
            token.type == "name"
            and token.value in _CALLS
            and [t.type for t in call] == ["name", "lparen", "string", "rparen"]
            and (i == 0 or tokens[i - 1].type != "dot")
        ):
            line = token.lineno
            text = str(translated(language, call[2].value))
            yield Token(line, "lparen", "(")
            yield Token(line, "string", text)
            yield Token(line, "pipe", "|")
            yield Token(line, "name", "safe")
            yield Token(line, "rparen", ")")
            i += 4
            continue
        yield token
        i += 1


class TranslatedEnvironment(Environment):
    """get_template() answers with the template compiled for the current language."""

    def get_template(self, name: Any, parent: str | None = None, globals: Any = None) -> Any:
        if isinstance(name, str) and language_of(name) is None:
            name = f"{current_language.get()}/{name}"
        return super().get_template(name, parent, globals)


class TranslatedLoader(BaseLoader):
    """Serves "<language>/<name>" from the file <name>, so each language compiles its own copy
    (Jinja compiles a template under the name it was asked for, which carries the language)."""

    def __init__(self, directory: Path) -> None:
        self._files = FileSystemLoader(directory)

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        language, _, name = template.partition("/")
        if language not in LANGUAGES:
            raise TemplateNotFound(template)
        return self._files.get_source(environment, name)

    def list_templates(self) -> list[str]:
        return [
            f"{language}/{name}" for language in LANGUAGES for name in self._files.list_templates()
        ]

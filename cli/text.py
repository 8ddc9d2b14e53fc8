"""Text for the terminal: control characters made visible, messages, counted nouns.

A leaf module (it imports nothing of the CLI), so every other CLI module can
use it: :mod:`cli.output`, :mod:`cli.errors`, :mod:`cli.input_limits` and
:mod:`cli.context` borrowed these from each other before, in a cycle.
"""

from __future__ import annotations

import re

import click

__all__ = ["json_text", "plural", "say", "visible"]

#: What must never reach a terminal raw: C0 and C1 controls and DEL, the
#: characters that reorder or hide text (bidi marks, overrides and isolates, the
#: zero-width space and BOM, line and paragraph separators; not the joiners emoji
#: and scripts need), and lone surrogates (undecodable bytes).
_INVISIBLE = "\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ufeff"
_UNSAFE = re.compile(f"[\\x00-\\x1f{_INVISIBLE}\\ud800-\\udfff]")
_UNSAFE_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f{_INVISIBLE}\\ud800-\\udfff]")
#: In JSON text every unsafe character sits inside a string, where a \\u escape
#: stands for exactly the same value (C0 controls are escaped by the encoder).
_UNSAFE_JSON = re.compile(f"[{_INVISIBLE}]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or invisible character written as a visible escape.

    ``"a\\x1b[31mb"`` becomes ``a\\x1b[31mb`` (a backslash, then ``x1b``): safe to
    write to a terminal, and the reader sees exactly what is stored. With
    ``keep_newlines``, newlines and tabs stay (for messages of several lines).
    """
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)


def say(message: str, *, err: bool = False, nl: bool = True) -> None:
    """Print a message for people (stdout, or stderr with ``err``), control characters escaped."""
    click.echo(visible(message, keep_newlines=True), err=err, nl=nl)


def json_text(text: str) -> str:
    """Encoded JSON with the characters a terminal would act on written as \\u escapes."""
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``6,250 runs`` (``plural_form`` for irregular nouns)."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"

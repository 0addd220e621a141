"""Backslash escapes for the characters a template would otherwise read as syntax.

dynamicprompts has no escape of its own (its issue #885): ``$10``, ``100%`` or ``#1`` in
a template is a syntax error or a comment, and a brace always opens a variant. Before a
template reaches the library, ``\\{`` and the like become code points of Unicode's
private use area, which the library's grammar takes as ordinary text; after expansion
they become the characters again. Only these pairs change: any other backslash stays.
"""

from __future__ import annotations

import re

ESCAPABLE = "{}|$#%_\\"
_BASE = 0xE000  # Unicode private use area: no meaning to the grammar or to a model
_ESCAPE = re.compile(r"\\([" + re.escape(ESCAPABLE) + r"])")
_UNESCAPE = {_BASE + ord(c): c for c in ESCAPABLE}


def hide_escapes(text: str) -> str:
    """``text`` with each ``\\X`` (X one of ESCAPABLE) replaced by a stand-in for X."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(_BASE + ord(m.group(1))), text)


def restore_escapes(text: str) -> str:
    """The characters the stand-ins of ``hide_escapes`` stood for."""
    return text.translate(_UNESCAPE)

"""The API key: read once, before anything is sent, from ``--api-key-file`` or
``SEGMIND_API_KEY``; never from the command line, never echoed.

A key file may end in a newline or CRLF and start with a UTF-8 BOM (what editors on
every platform save); surrounding whitespace goes too. Anything else (two non-empty
lines, spaces or control characters inside) is a usage error whose message does not
show the content: it could be a key.

Once read, the key leaves this process's environment (``scrub_environment``): every
child a run starts (the notify command) inherits no variable holding it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from batchgen import errors
from batchgen.report.morning import KEY_ENV as KEY_ENV
from batchgen.report.morning import secret_variables

KEY_SOURCES = f"set {KEY_ENV} or pass --api-key-file FILE"


def clean_key(text: str, source: str) -> str:
    """The key in ``text`` (the content of ``source``), or a UsageError that shows none
    of it."""
    lines = [line.strip() for line in text.removeprefix("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise errors.UsageError(f"{source} is empty: {KEY_SOURCES} with your Segmind key")
    if len(lines) > 1:
        raise errors.UsageError(
            f"{source} holds {len(lines)} non-empty lines; it must hold the key alone on "
            "one line (content not shown)")
    key = lines[0]
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise errors.UsageError(f"{source}: the key contains spaces or control characters "
                                "(content not shown)")
    return key


def read_key_file(path: Path) -> str:
    """The key in a key file (see the module docstring)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise errors.UsageError(f"cannot read --api-key-file {path}: "
                                f"{exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.UsageError(f"--api-key-file {path} is not UTF-8 text "
                                "(content not shown)") from None
    return clean_key(text, f"--api-key-file {path}")


def api_key(key_file: str | None, env: Mapping[str, str]) -> str:
    """The key from ``--api-key-file`` when given, else from the environment."""
    if key_file:
        return read_key_file(Path(key_file))
    if not env.get(KEY_ENV, "").strip():
        raise errors.UsageError(f"no API key: {KEY_SOURCES} (or use --local for the "
                                "embedded server)")
    return clean_key(env[KEY_ENV], KEY_ENV)


def scrub_environment(env: MutableMapping[str, str], secrets: Iterable[str]) -> list[str]:
    """Remove ``SEGMIND_API_KEY`` and every variable whose value contains a secret;
    returns the names removed."""
    names = secret_variables(env, secrets)
    for name in names:
        del env[name]
    return names

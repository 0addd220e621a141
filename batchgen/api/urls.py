"""URLs of the API: whether two share an origin (the key goes to the API's only), and a
stored URL moved to the current server."""

from __future__ import annotations

from yarl import URL


def same_origin(one: str | URL, other: str | URL) -> bool:
    """Same scheme, host and port; a URL that cannot be parsed matches nothing."""
    try:
        a, b = URL(one), URL(other)
        return (a.scheme.lower(), (a.host or "").lower(), a.port) == (
            b.scheme.lower(), (b.host or "").lower(), b.port)
    except ValueError:
        return False


def rebase(url: str, base: str) -> str:
    """``url``'s path and query on ``base``'s scheme, host and port."""
    target, origin = URL(url), URL(base)
    return str(target.with_scheme(origin.scheme).with_host(origin.host or "")
               .with_port(origin.port))

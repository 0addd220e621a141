"""Rows of the account-history API, whatever envelope a page comes in.

The envelope of a list page is not documented (API-FACTS.md, "Account history"): take
the rows from a bare list, or from the one key whose value is a list of objects carrying
``request_id`` (``data``, ``items``, ``results`` ...), looking one level deep at most.
"""

from __future__ import annotations

from typing import Any

from batchgen.errors import BadResponseError


def _rows(value: object) -> list[dict[str, Any]] | None:
    """``value`` as a list of row objects, or None when it is not one."""
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        return None
    return value


def _candidates(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    lists = [rows for rows in map(_rows, body.values()) if rows is not None]
    with_ids = [rows for rows in lists if any("request_id" in row for row in rows)]
    if with_ids:
        return with_ids
    return [rows for rows in lists if not rows]  # an empty page: {"data": [], "total": 0}


def history_rows(body: object, *, url: str | None = None) -> list[dict[str, Any]]:
    """The rows of one history page; raises BadResponseError when none can be found."""
    rows = _rows(body)
    if rows is not None:
        return rows
    if not isinstance(body, dict):
        raise BadResponseError("history page is neither a list nor an object", url=url)
    found = _candidates(body)
    if not found:
        for nested in body.values():
            if isinstance(nested, dict):
                found.extend(_candidates(nested))
    non_empty = [rows for rows in found if rows]
    if len(non_empty) > 1:
        raise BadResponseError("history page has several lists of rows", url=url)
    if non_empty:
        return non_empty[0]
    if found:
        return []
    raise BadResponseError("history page has no list of rows", url=url)

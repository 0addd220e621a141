"""Where things stand in a YAML document: the lines of keys and values, keys set twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgen.manifest.sources import Report

if TYPE_CHECKING:
    import yaml


def duplicate_keys(node: yaml.Node | None, label: str | None, prefix: str,
                   report: Report) -> bool:
    """Report keys set twice in one YAML mapping (the loader keeps the last silently)."""
    import yaml  # loaded only for YAML manifests

    if not isinstance(node, yaml.MappingNode):
        return False
    found = False
    first: dict[str, int] = {}
    for key, _ in node.value:
        name, line = str(key.value), key.start_mark.line + 1
        if name in first:
            report(line, label, prefix + name,
                   f"set twice (first on line {first[name]}): the last value would "
                   "silently win")
            found = True
        else:
            first[name] = line
    return found


def line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def key_lines(node: yaml.Node | None) -> dict[str, int]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def value_nodes(node: yaml.Node | None) -> dict[str, yaml.Node]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): value for key, value in node.value}

"""A resume after a one-line wildcard edit submits only the items that drew the new line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import StartServer
from test_run import run
from test_templates import manifest, wildcards_folder


def accepted_prompts(stats: dict[str, Any]) -> Counter[str]:
    """Accepted submits per prompt, from the server's own counter."""
    found: Counter[str] = Counter()
    for key, count in stats["accepted_by_body"].items():
        found[json.loads(key.split(" ", 1)[1])["prompt"]] += count
    return found


async def test_resume_after_wildcard_edit_submits_only_new_items(
    local_server: StartServer, tmp_path: Path
) -> None:
    """Edit green into teal: the next run sends the two teal items and nothing else."""
    server = await local_server()
    folder = wildcards_folder(tmp_path, {"colors.txt": "red\nblue\ngreen\n"})
    path = manifest(tmp_path, "items:\n  - {id: hat, prompt: '__colors__ hat'}\n"
                              "  - '__colors__ scarf, {wool|silk}'\n")
    out = tmp_path / "out"
    first = await run(server, path, out)
    assert first["items"]["completed"] == 9
    before = accepted_prompts(server.stats())
    assert sum(before.values()) == 9

    (folder / "colors.txt").write_text("red\nblue\nteal\n", encoding="utf-8")
    second = await run(server, path, out)
    new = accepted_prompts(server.stats()) - before
    assert new == Counter({"teal hat": 1, "teal scarf, wool": 1, "teal scarf, silk": 1})
    # The green items are kept in OUT, no longer in the manifest; nothing else was sent.
    assert (second["items"]["in_manifest"], second["items"]["not_in_manifest"]) == (9, 3)
    assert second["this_run"]["skipped_done"] == 6

"""The --notify-cmd child never sees the API key, under its own name or any other."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from child import against, batchgen, child_env
from conftest import StartServer
from test_run import write_manifest

from batchgen.report.morning import run_notify

SECRET = "SG_notify_secret_0123456789abcdef"


def env_dump_command(target: Path) -> str:
    """A notify command that saves its whole environment, NUL-separated."""
    return f"env -0 > {shlex.quote(str(target))}"


def child_environment(dump: Path) -> dict[str, str]:
    pairs = [entry.split("=", 1) for entry in dump.read_text().split("\0") if "=" in entry]
    return {name: value for name, value in pairs}


async def test_key_from_the_environment_is_not_passed_on(local_server: StartServer,
                                                         tmp_path: Path) -> None:
    """SEGMIND_API_KEY, a copy of it and a URL holding it: none reaches the child."""
    server = await local_server(api_key=SECRET)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a, b]\n")
    dump = tmp_path / "env"
    env = child_env({"SEGMIND_API_KEY": SECRET, "BACKUP_KEY": SECRET,
                     "HOOK_URL": f"https://chat.example/hook?key={SECRET}",
                     "HARMLESS": "stays"})
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *against(server),
                          "--notify-cmd", env_dump_command(dump), env=env)
    assert done.returncode == 0, done.stderr
    assert server.stats()["submits_accepted"] == 2  # the key did reach the API
    seen = child_environment(dump)
    assert seen["HARMLESS"] == "stays"
    assert seen["BATCHGEN_SUMMARY"] == str((tmp_path / "out" / "summary.json").resolve())
    assert not {"SEGMIND_API_KEY", "BACKUP_KEY", "HOOK_URL"} & seen.keys()
    assert SECRET not in dump.read_text()


async def test_key_from_a_file_is_not_passed_on(local_server: StartServer,
                                                tmp_path: Path) -> None:
    """A key read from --api-key-file and also exported under another name stays out."""
    server = await local_server(api_key=SECRET)
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    dump = tmp_path / "env"
    done = await batchgen("run", str(manifest), "-o", str(tmp_path / "out"), *against(server),
                          "--api-key-file", str(key_file),
                          "--notify-cmd", env_dump_command(dump),
                          env=child_env({"MY_SEGMIND": SECRET}))
    assert done.returncode == 0, done.stderr
    assert "MY_SEGMIND" not in child_environment(dump)
    assert SECRET not in dump.read_text()


async def test_local_run_drops_a_real_key_too(tmp_path: Path) -> None:
    """With --local the real key in SEGMIND_API_KEY is not used, and not passed on."""
    manifest = write_manifest(tmp_path / "m.yaml", "items: [a]\n")
    dump = tmp_path / "env"
    done = await batchgen("run", str(manifest), "--local", "-o", str(tmp_path / "out"),
                          "--no-progress", "--notify-cmd", env_dump_command(dump),
                          env=child_env({"SEGMIND_API_KEY": SECRET}))
    assert done.returncode == 0, done.stderr
    assert SECRET not in dump.read_text()


def test_run_notify_scrubs_the_secrets_it_is_given(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """run_notify(secrets=[key]) keeps the key's variables, by name or value, from its child."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"exit_code": 0}))
    monkeypatch.setenv("SEGMIND_API_KEY", "something else")
    monkeypatch.setenv("ALIAS", f"Bearer {SECRET}")
    dump = tmp_path / "env"
    assert run_notify(env_dump_command(dump), summary, secrets=[SECRET]) == 0
    seen = child_environment(dump)
    assert "SEGMIND_API_KEY" not in seen and "ALIAS" not in seen
    assert seen["BATCHGEN_EXIT_CODE"] == "0"

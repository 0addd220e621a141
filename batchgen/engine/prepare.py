"""Before a run: the manifest checked (or known unchanged), and OUT cleared of leftovers."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from batchgen.config import RunConfig
from batchgen.errors import ManifestError, StoreError, UsageError
from batchgen.manifest.files import manifest_format, wildcard_files
from batchgen.manifest.reader import ManifestReader
from batchgen.store.runs import validated_with

log = logging.getLogger(__name__)


def reader_for(cfg: RunConfig) -> ManifestReader:
    """The run's manifest reader, named as the user named the manifest."""
    if cfg.manifest_name is None:
        return ManifestReader(cfg.manifest, allow_unknown_params=cfg.allow_unknown_params,
                              max_expansions=cfg.max_expansions)
    return ManifestReader(cfg.manifest, allow_unknown_params=cfg.allow_unknown_params,
                          max_expansions=cfg.max_expansions, name=cfg.manifest_name,
                          base=Path.cwd())


def validate(cfg: RunConfig) -> ManifestReader:
    """A full pass over the manifest; raises ManifestError before anything is sent."""
    reader = reader_for(cfg)
    if not reader.check():
        errors = [p for p in reader.problems if p.severity == "error"]
        raise ManifestError(errors, total=reader.errors)
    for problem in reader.problems:
        log.warning("%s", problem, extra={"event": "manifest.warning"})
    return reader


def file_hash(path: Path) -> str:
    """A digest of the manifest's bytes and of the wildcard files it can read, to know
    it again on resume."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        for part in (path, *wildcard_files(path.parent / "wildcards")):
            digest.update(str(part.relative_to(path.parent)).encode() + b"\0")
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def validated_before(cfg: RunConfig, digest: str) -> bool:
    """True when an earlier run into OUT validated this very JSONL file with these options.

    Resuming a million-line manifest then skips the separate validation pass (the run's
    own reading still checks every item). YAML may name an ``items_file`` that its own
    hash does not cover, so YAML is always validated first.
    """
    if manifest_format(cfg.manifest) != "jsonl":
        return False
    return any(options.get("allow_unknown_params") == cfg.allow_unknown_params
               for options in validated_with(cfg.state_dir / "state.db", digest))


def prepared_reader(cfg: RunConfig) -> tuple[ManifestReader, str]:
    """The manifest's reader (validated unless known unchanged) and its digest. Blocking."""
    digest = file_hash(cfg.manifest)
    if validated_before(cfg, digest):
        return reader_for(cfg), digest
    return validate(cfg), digest


def check_writable(out: Path) -> None:
    """OUT and OUT/images can take a file, or StoreError before anything is sent.
    Blocking."""
    for folder in (out, out / "images"):
        probe = folder / f".tmp-probe-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"cannot write into {folder}: {exc.strerror or exc}; "
                             "nothing was sent") from exc


def remove_leftovers(out: Path) -> int:
    """Delete the temporary files a killed run left in OUT and OUT/images. Blocking."""
    removed = 0
    for folder in (out, out / "images"):
        # scandir, not glob: glob lists the whole folder first (a million images, 300 MB).
        try:
            entries = os.scandir(folder)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith(".tmp-"):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.info("removed %d temporary files left by an earlier run", removed,
                 extra={"event": "run.leftovers"})
    return removed

"""Fetch pinned jars from a Maven repository and check each against its pinned SHA-256."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lienthong.errors import ConfigurationError


@dataclass(frozen=True)
class PinnedJar:
    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        return f"{repo.rstrip('/')}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


def read_lock(path: Path) -> list[PinnedJar]:
    """Parse a lock file: `group:artifact:version sha256` a line, # comments."""
    jars = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            coordinate, sha256 = line.split()
            group, artifact, version = coordinate.split(":")
        except ValueError:
            raise ConfigurationError(f"{path}:{number}: expected 'group:artifact:version sha256'") from None
        jars.append(PinnedJar(group, artifact, version, sha256.lower()))
    return jars


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_jars(lock: Path, dest: Path, repo: str,
               progress: Callable[[PinnedJar, bool], None] | None = None) -> list[Path]:
    """Make sure every jar of the lock is in dest with its pinned digest; download what is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for jar in read_lock(lock):
        target = dest / jar.filename
        cached = target.exists() and _sha256(target) == jar.sha256
        if not cached:
            # A name of its own, so that two processes fetching into one folder do not share a partial file.
            partial = target.with_name(f"{target.name}.{os.getpid()}.part")
            try:
                with urllib.request.urlopen(jar.url(repo), timeout=60) as response, partial.open("wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                partial.unlink(missing_ok=True)
                raise ConfigurationError(f"cannot download {jar.url(repo)}: {exc}") from exc
            actual = _sha256(partial)
            if actual != jar.sha256:
                partial.unlink(missing_ok=True)
                raise ConfigurationError(
                    f"{jar.filename}: SHA-256 {actual} does not match the pinned {jar.sha256}; refusing it"
                )
            os.replace(partial, target)
        if progress:
            progress(jar, cached)
        paths.append(target)
    return paths

"""Signed releases: the central's TUF repository (python-tuf), from which terminals take their updates.

A terminal installs nothing that the keys below did not sign, whatever the network or the central's disk
says. The four roles and their keys:

- **root** (offline keys, a threshold of them: 2 of 3 by default): which keys hold which role. Its keys are
  files the operator keeps off the central and brings only to create or rotate.
- **targets** (an offline key): the list of releases, each a bundle with its length, hashes and version. A
  publication needs this key; a central that is broken into cannot publish.
- **snapshot** and **timestamp** (online keys, in the central's data directory, 0600): the central re-signs
  them (:func:`refresh`): the timestamp expires in a day, so a terminal cut off from a central that stopped
  re-signing keeps running what it has and installs nothing ("freeze" attacks).

On disk, ``<data dir>/tuf/``: ``metadata/`` (``N.root.json``, ``N.targets.json``, ``N.snapshot.json``,
``timestamp.json``: consistent snapshots, so a terminal reading while a publication lands never mixes
versions) and ``targets/<sha256>.<name>``, served as files under ``/tuf/`` (``central/app.py``), with
``Range`` so a download cut on a bus resumes.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     d = pathlib.Path(d)
...     roots = [d / f"root{i}.pem" for i in range(3)]
...     for path in [*roots, d / "targets.pem"]:
...         _ = generate_key(path)
...     repo = init_repository(d / "tuf", roots, 2, d / "targets.pem")
...     _ = (d / "bundle.tar").write_bytes(b"release")
...     publish(d / "tuf", d / "bundle.tar", "0.2.0", d / "targets.pem", arch="arm64")["target"]
'aptic-terminal-0.2.0-arm64.tar'
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=365), "snapshot": timedelta(days=7),
          "timestamp": timedelta(days=1)}  # fmt: skip
VERSION = re.compile(r"^\d{1,4}(\.\d{1,4}){0,3}$")
PRETTY = JSONSerializer(compact=False)


class ReleaseError(ValueError):
    """A publication refused (a bad version, not newer, a wrong key); the repository is unchanged."""


def version_key(version: str) -> tuple[int, ...]:
    """Releases compare as numbers: 0.10.0 is newer than 0.9.3."""
    if not VERSION.match(version):
        raise ReleaseError(f"not a release version (digits and dots, e.g. 0.2.1): {version!r}")
    return tuple(int(part) for part in version.split("."))


ARCHES = ("amd64", "arm64")  # Debian's names: a Raspberry Pi, a PC


def target_name(version: str, arch: str) -> str:
    """One bundle per version and architecture (a fleet mixes Pis and PCs; the venv holds compiled code)."""
    return f"aptic-terminal-{version}-{arch}.tar"


def bundle_arch(bundle: Path) -> str | None:
    """The architecture a bundle says it is for (its RELEASE.json, written by ``images/release``)."""
    try:
        with tarfile.open(bundle) as tar:
            member = tar.extractfile("RELEASE.json")
            return json.loads(member.read()).get("arch") if member else None
    except (tarfile.TarError, KeyError, ValueError, OSError):
        return None


# -- keys -------------------------------------------------------------------------------------------------------


def generate_key(path: Path) -> str:
    """A new ed25519 private key in ``path`` (PEM, mode 0600); returns its key id."""
    signer = CryptoSigner.generate_ed25519()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
    return signer.public_key.keyid


def load_signer(path: Path) -> CryptoSigner:
    private = load_pem_private_key(path.read_bytes(), password=None)
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))  # type: ignore[arg-type]


# -- the repository ---------------------------------------------------------------------------------------------


class Repository:
    """One TUF repository directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.metadata = directory / "metadata"
        self.targets = directory / "targets"
        self.keys = directory / "keys"

    def load(self, role: str) -> Metadata[Any]:
        if role == "timestamp":
            return Metadata.from_file(str(self.metadata / "timestamp.json"))
        versions = sorted(int(p.name.split(".")[0]) for p in self.metadata.glob(f"*.{role}.json"))
        return Metadata.from_file(str(self.metadata / f"{versions[-1]}.{role}.json"))

    def write(self, metadata: Metadata[Any]) -> None:
        role = metadata.signed.type
        name = "timestamp.json" if role == "timestamp" else f"{metadata.signed.version}.{role}.json"
        temporary = self.metadata / f".{name}.tmp"
        temporary.write_bytes(metadata.to_bytes(PRETTY))
        os.replace(temporary, self.metadata / name)

    def online_signer(self, role: str) -> CryptoSigner:
        return load_signer(self.keys / f"{role}.pem")

    def sign_online(self, now: datetime) -> None:
        """A new snapshot (of the current targets) and timestamp, signed with the central's online keys."""
        targets = self.load("targets")
        snapshot = self.load("snapshot")
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        snapshot.signed.version += 1
        snapshot.signed.expires = now + EXPIRY["snapshot"]
        snapshot.signatures.clear()
        snapshot.sign(self.online_signer("snapshot"))
        self.write(snapshot)
        self.sign_timestamp(now, snapshot.signed.version)

    def sign_timestamp(self, now: datetime, snapshot_version: int | None = None) -> None:
        timestamp = self.load("timestamp")
        if snapshot_version is not None:
            timestamp.signed.snapshot_meta = MetaFile(version=snapshot_version)
        timestamp.signed.version += 1
        timestamp.signed.expires = now + EXPIRY["timestamp"]
        timestamp.signatures.clear()
        timestamp.sign(self.online_signer("timestamp"))
        self.write(timestamp)


def init_repository(
    directory: Path, root_key_files: Sequence[Path], threshold: int, targets_key_file: Path,
    now: datetime | None = None,
) -> Repository:  # fmt: skip
    """A new repository: root held by the keys in ``root_key_files`` (``threshold`` of them must sign any later
    root) and signed by all of them, targets by the offline key in ``targets_key_file``, online snapshot and
    timestamp keys made here. The key files go back offline afterwards."""
    now = now or datetime.now(UTC)
    repo = Repository(directory)
    if repo.metadata.exists():
        raise ReleaseError(f"{directory} already holds a repository")
    signers = [load_signer(path) for path in root_key_files]
    if not 1 <= threshold <= len(signers):
        raise ReleaseError(f"a threshold of {threshold} needs at least that many root keys (got {len(signers)})")
    targets_signer = load_signer(targets_key_file)
    repo.metadata.mkdir(parents=True)
    repo.targets.mkdir()
    repo.keys.mkdir(mode=0o700)
    online = {}
    for role in ("snapshot", "timestamp"):
        generate_key(repo.keys / f"{role}.pem")
        online[role] = repo.online_signer(role).public_key

    root = Root(expires=now + EXPIRY["root"])
    for signer in signers:
        root.add_key(signer.public_key, "root")
    root.roles["root"].threshold = threshold
    root.add_key(targets_signer.public_key, "targets")
    for role, key in online.items():
        root.add_key(key, role)
    metadata = Metadata(root)
    for signer in signers:
        metadata.sign(signer, append=True)
    repo.write(metadata)

    targets = Metadata(Targets(expires=now + EXPIRY["targets"]))
    targets.sign(targets_signer)
    repo.write(targets)
    snapshot = Metadata(Snapshot(expires=now + EXPIRY["snapshot"]))
    snapshot.sign(repo.online_signer("snapshot"))
    repo.write(snapshot)
    timestamp = Metadata(Timestamp(expires=now + EXPIRY["timestamp"]))
    timestamp.sign(repo.online_signer("timestamp"))
    repo.write(timestamp)
    return repo


def publish(directory: Path, bundle: Path, version: str, targets_key_file: Path, arch: str | None = None,
            now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """Add ``bundle`` as release ``version`` for ``arch`` (by default what the bundle says), newer than every
    release published for that architecture, signed with the targets key."""
    now = now or datetime.now(UTC)
    repo = Repository(directory)
    key = version_key(version)
    arch = arch or bundle_arch(bundle)
    if arch not in ARCHES:
        raise ReleaseError(f"a bundle is for one of {', '.join(ARCHES)}, not {arch!r} (give --arch)")
    targets = repo.load("targets")
    published = [t.custom.get("version", "0") for t in targets.signed.targets.values() if t.custom.get("arch") == arch]
    if any(version_key(p) >= key for p in published):
        raise ReleaseError(f"{version} is not newer than every {arch} release published ({', '.join(published)})")
    signer = load_signer(targets_key_file)
    if signer.public_key.keyid not in repo.load("root").signed.roles["targets"].keyids:
        raise ReleaseError("this key does not hold the targets role")
    data = bundle.read_bytes()
    name = target_name(version, arch)
    target = TargetFile.from_data(name, data, ["sha256"])
    target.unrecognized_fields["custom"] = {"version": version, "arch": arch}
    digest = target.hashes["sha256"]
    stored = repo.targets / f"{digest}.{name}"
    shutil.copyfile(bundle, stored.with_name(stored.name + ".tmp"))
    os.replace(stored.with_name(stored.name + ".tmp"), stored)
    targets.signed.targets[name] = target
    targets.signed.version += 1
    targets.signed.expires = now + EXPIRY["targets"]
    targets.signatures.clear()
    targets.sign(signer)
    repo.write(targets)
    repo.sign_online(now)
    return {"target": name, "version": version, "arch": arch, "length": len(data), "sha256": digest,
            "targets_version": targets.signed.version}  # fmt: skip


def refresh(directory: Path, now: datetime | None = None) -> dict[str, Any]:
    """Re-sign what the central signs online: the timestamp always, the snapshot when it expires within 3 days.
    Run daily at least (``aptic-central release refresh``; ``serve`` does it itself)."""
    now = now or datetime.now(UTC)
    repo = Repository(directory)
    if repo.load("snapshot").signed.expires - now < timedelta(days=3):
        repo.sign_online(now)
    else:
        repo.sign_timestamp(now)
    timestamp = repo.load("timestamp").signed
    return {"timestamp_version": timestamp.version, "expires": timestamp.expires.isoformat()}


def releases(directory: Path) -> list[dict[str, Any]]:
    """The published releases, oldest first."""
    targets = Repository(directory).load("targets").signed.targets.values()
    rows = [{"target": t.path, "version": t.custom.get("version"), "arch": t.custom.get("arch"), "length": t.length,
             "sha256": t.hashes["sha256"]} for t in targets]  # fmt: skip
    return sorted(rows, key=lambda r: (version_key(r["version"]), r["arch"]))


def root_json(directory: Path) -> bytes:
    """The first root, which a terminal trusts from the start (the image, or its activation, brings it)."""
    return (Repository(directory).metadata / "1.root.json").read_bytes()

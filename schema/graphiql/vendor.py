"""Refreshes GraphiQL's vendored files from the npm registry, by hand only:

    .venv/bin/python -m schema.graphiql.vendor

Packs each pinned package with ``npm pack``, copies the files the page loads and the
licences into ``static/``, and rewrites ``static/manifest.json`` (what the app serves and
the digests the page's integrity attributes carry) and the file table of
``static/README.md``. Nothing runs this at run time or in the tests. To move to another
version, change ``PINNED``, run it, then open GraphiQL once in a browser."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
MANIFEST = STATIC / "manifest.json"
README = STATIC / "README.md"
TABLE_START = "<!-- files: written by vendor.py -->"
TABLE_END = "<!-- end of files -->"


@dataclass(frozen=True)
class Pinned:
    """Files taken from one npm package, in the order the page loads them."""

    package: str
    version: str
    files: tuple[str, ...]  # paths in the tarball, under package/
    # (package@version, path in its tarball, name here) of licences, when the package
    # ships none of its own.
    licenses: tuple[tuple[str, str, str], ...] = ()

    @property
    def folder(self) -> str:
        # As npm names the tarball: a scope's slash becomes a dash.
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}"


PINNED = (
    Pinned("react", "18.2.0", ("umd/react.production.min.js",)),
    Pinned("react-dom", "18.2.0", ("umd/react-dom.production.min.js",)),
    Pinned("graphiql", "3.8.3", ("graphiql.min.css", "graphiql.min.js")),
    # Its tarball has no LICENSE: it is MIT, from the graphiql repository, whose LICENSE
    # graphiql's tarball carries; its UMD build bundles graphiql-explorer (MIT too).
    Pinned(
        "@graphiql/plugin-explorer",
        "1.0.2",
        ("dist/style.css", "dist/index.umd.js"),
        licenses=(
            ("graphiql@3.8.3", "LICENSE", "LICENSE"),
            ("graphiql-explorer@0.9.0", "LICENSE", "LICENSE.graphiql-explorer"),
        ),
    ),
)


def pack(spec: str, into: Path) -> tuple[tarfile.TarFile, str]:
    """The tarball of ``spec`` (name@version) and npm's integrity string for it."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    packed = json.loads(out)[0]
    return tarfile.open(into / packed["filename"]), packed["integrity"]


def read(tarball: tarfile.TarFile, path: str) -> bytes:
    member = tarball.extractfile(f"package/{path}")
    if member is None:
        raise SystemExit(f"{tarball.name!s} has no file package/{path}")
    return member.read()


def digests(data: bytes) -> dict[str, str]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "integrity": "sha384-" + b64encode(hashlib.sha384(data).digest()).decode(),
    }


def vendor(work: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    tarballs: dict[str, tuple[tarfile.TarFile, str]] = {}

    def tarball(spec: str) -> tuple[tarfile.TarFile, str]:
        if spec not in tarballs:
            tarballs[spec] = pack(spec, work)
        return tarballs[spec]

    for old in STATIC.iterdir():  # the files of versions pinned before
        if old.is_dir():
            shutil.rmtree(old)
    for pinned in PINNED:
        spec = f"{pinned.package}@{pinned.version}"
        sources = [(spec, path, Path(path).name) for path in pinned.files]
        sources += pinned.licenses or ((spec, "LICENSE", "LICENSE"),)
        for source_spec, path, name in sources:
            packed, integrity = tarball(source_spec)
            data = read(packed, path)
            served = f"{pinned.folder}/{name}"
            target = STATIC / served
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            kind = {".js": "script", ".css": "style"}.get(target.suffix, "license")
            entries.append(
                {
                    "path": served,
                    "kind": kind,
                    "package": source_spec,
                    "source": f"package/{path}",
                    "tarball": integrity,
                    "bytes": len(data),
                    **digests(data),
                }
            )
    return entries


def table(entries: list[dict[str, object]]) -> str:
    rows = [
        "| file | from (npm package, path in its tarball) | bytes | sha256 |",
        "| --- | --- | ---: | --- |",
    ]
    for entry in entries:
        rows.append(
            f"| `{entry['path']}` | `{entry['package']}` `{entry['source']}` "
            f"| {entry['bytes']:,} | `{entry['sha256']}` |"
        )
    return "\n".join(rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        entries = vendor(Path(work))
    MANIFEST.write_text(json.dumps({"files": entries}, indent=2) + "\n")
    text = README.read_text()
    before, _, rest = text.partition(TABLE_START)
    _, _, after = rest.partition(TABLE_END)
    README.write_text(f"{before}{TABLE_START}\n{table(entries)}\n{TABLE_END}{after}")
    print(f"{len(entries)} files written under {STATIC}", file=sys.stderr)


if __name__ == "__main__":
    main()

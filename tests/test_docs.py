"""README.md and docs/ link to files that exist, and to headings that exist in them.

A page moved or renamed leaves links behind it; a newcomer following one finds
nothing. The check reads the Markdown the way a renderer does: code (fenced blocks and
inline spans) holds no links, and an anchor is a heading's GitHub slug.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; [label]: target.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return INLINE_LINK.findall(prose) + REFERENCE.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"<[^>]+>", "", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:: not files of this repository
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    assert broken_links(page) == []


def test_the_check_sees_links_a_renderer_sees_and_only_those(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A page\n\n## The sign-in flow, step by step\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) ![img](missing.png) [gone](docs/gone.md)\n"
        "[anchor](there.md#the-sign-in-flow-step-by-step) [bad](there.md#nowhere)\n"
        "[web](https://example.com/x.md) [self](#a-heading)\n\n"
        "## A heading\n\n"
        "`[code](not-a-link.md)`\n\n```md\n[fenced](not-a-link-either.md)\n```\n\n"
        "[label]: also-missing.md\n"
    )
    assert broken_links(page) == [
        "missing.png: no such file",
        "docs/gone.md: no such file",
        "there.md#nowhere: no heading #nowhere in there.md",
        "also-missing.md: no such file",
    ]


def test_readme_runs_the_tests_as_ci_does() -> None:
    """`.ci/run` runs README's test command, copied line for line: the two must agree."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # mypy and ruff run after it, so it is not the last line.
    runs = [line for line in lines if line.startswith("python3 -m venv .venv")]
    assert len(runs) == 1
    assert runs[0] in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()

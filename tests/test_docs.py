"""The README as the front door: under 10,000 bytes, every relative link (and heading
anchor) in it and in docs/ resolves, it links every docs page, docs/layout.md names every
script, module and test, and every config key it documents is in the scripts' --help."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT

import create_tables
import etl

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 10_000

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:



def _prose(text: str) -> str:
    """The text without fenced code blocks: a '# comment' there is no heading, a link no link."""
    return FENCE.sub("", text)


def links(page: Path) -> list[str]:
    return LINK.findall(CODE_SPAN.sub("", _prose(page.read_text(encoding="utf-8"))))


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a page: lower case, punctuation dropped, spaces to
    hyphens, and -1, -2, … on repeats."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(_prose(page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def test_the_readme_is_under_10000_characters():
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size:,} bytes; move depth into docs/"


def test_the_readme_links_only_relative_paths():
    for target in links(README):
        assert not EXTERNAL.match(target) and not target.startswith("/"), target


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    if page == README:
        assert links(page), "no links found in README.md: has the link pattern broken?"
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        assert ROOT in linked.parents, f"{page.name}: {target} leaves the repository"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target} names no heading of {linked.name}"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    for page in DOCS:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(ROOT)}"


def test_the_layout_names_every_script_module_and_test():
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `([^`]+)`", layout, re.M))
    files = [*ROOT.glob("*.py"), *(ROOT / "sparkify").glob("*.py"), *(ROOT / "tests").glob("*.py"),
             *(ROOT / "tools").glob("*.py")]
    for path in files:
        if path.name != "__init__.py":
            assert path.relative_to(ROOT).as_posix() in named, f"README's Layout does not name {path.name}"


def readme_config_keys() -> set[str]:
    """The sections and keys named in the first column of README's Configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for row in section.splitlines():
        cell = row.split("|")[1] if row.startswith("|") else ""
        named = re.fullmatch(r"\s*`\[(\w+)\]([^`]*)`\s*", cell)
        if named:
            keys.add(f"[{named.group(1)}]")
            keys.update(word for word in named.group(2).split() if re.fullmatch(r"[A-Z][A-Z0-9_]*", word))
    return keys


def script_help(script, capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        script.main(["--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("script", [create_tables, etl], ids=lambda s: f"{s.__name__}.py")
def test_help_names_every_config_key_the_readme_documents(script, capsys):
    keys = readme_config_keys()
    assert {"[CLUSTER]", "HOST", "[S3]", "MAXERROR", "TRUNCATECOLUMNS"} <= keys, keys  # the table was read
    help_text = script_help(script, capsys)
    for key in sorted(keys):
        pattern = re.escape(key) if key.startswith("[") else rf"\b{re.escape(key)}\b"
        assert re.search(pattern, help_text), f"README documents {key}; {script.__name__}.py --help does not"

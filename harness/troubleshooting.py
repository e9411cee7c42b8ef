"""Keeps docs/troubleshooting.md honest: every error line a test sees must be
on that page, up to what varies between runs (values, paths, numbers, the
reason in parentheses)."""

from __future__ import annotations

import re

from harness import ROOT

PAGE = ROOT / "docs" / "troubleshooting.md"
# What differs between the page's run and a test's: 'quoted values',
# (reasons, which may nest), paths and URLs, numbers.
VARIABLE = re.compile(r"'[^']*'|\(.*\)|\S*/\S*|\d+")


def assert_documented(line: str) -> None:
    """The fixed text of `line`, in order, on one line of the page."""
    fixed = [re.escape(part) for part in VARIABLE.split(line.strip())]
    pattern = re.compile(".+?".join(fixed))
    page = PAGE.read_text().splitlines()
    assert any(pattern.search(doc) for doc in page), f"not in docs/troubleshooting.md: {line}"

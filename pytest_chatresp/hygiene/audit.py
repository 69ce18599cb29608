"""Auditing cassettes, including ones recorded before the plugin: what should not be in them.

An audit flags secrets (what ``chatresp scrub`` would replace, and what the recording's last
scan still finds after it), organisation and project ids, cookies, and bodies larger than a
threshold (base64 images, huge prompts). It reads and never writes; ``chatresp scrub`` fixes
what can be fixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_chatresp.errors import display_path

__all__ = ["Finding", "audit_file", "orphans"]

_IDS = (
    (re.compile(r"\borg-[A-Za-z0-9]{16,}\b"), "an organisation id (org-…)"),
    (re.compile(r"\bproj_[A-Za-z0-9]{16,}\b"), "a project id (proj_…)"),
)
_IMAGE = re.compile(r"data:image/[a-z+]+;base64,")


@dataclass(frozen=True)
class Finding:
    """Something a cassette should not hold: where, and what (never the value itself)."""

    path: str
    index: int | None
    where: str
    what: str

    def __str__(self) -> str:
        place = self.path if self.index is None else f"{self.path}, interaction {self.index}"
        return f"{place}: {self.where}: {self.what}"


def _body_size(body: Any) -> int:
    if isinstance(body, bytes):
        return len(body)
    if isinstance(body, str):
        return len(body.encode("utf-8", errors="replace"))
    return 0


def _kib(size: int) -> str:
    """``1,536 bytes`` → ``1.5 KB``: one decimal, so that a size just over the limit does not
    read as the limit itself."""
    return f"{size / 1024:,.1f} KB".replace(".0 KB", " KB")


def audit_file(path: Path, *, rules: Any, max_body_bytes: int) -> list[Finding]:
    """Everything in one cassette file that should not be there (raises ``CassetteError``)."""
    from pytest_chatresp.cassette import load_cassette
    from pytest_chatresp.checks import CHECKS

    from .scan import texts_of
    from .scrub import scrub_file

    shown = display_path(path)
    scrubbed = scrub_file(path, rules, strict=False)
    findings = [
        Finding(shown, None, description, "should not be recorded (chatresp scrub removes it)")
        for description in dict.fromkeys(scrubbed.found)
    ]
    # What the recording's last scan still finds once scrubbed: a key split across stream
    # events, one in an encoded string, a body it cannot decode.
    for where, kind in dict.fromkeys(scrubbed.remaining):
        findings.append(
            Finding(shown, None, where, f"{kind}, which should not be recorded (remove it by hand)")
        )
    cassette = load_cassette(path, skip_checks=CHECKS)
    for exchange in cassette.exchanges:
        parts = (
            ("request body", exchange.request.body),
            ("response body", exchange.body),
        )
        for name, body in parts:
            size = _body_size(body)
            if size > max_body_bytes:
                kind = (
                    " (a base64 image)"
                    if isinstance(body, str) and _IMAGE.search(body[:100_000])
                    else ""
                )
                findings.append(
                    Finding(
                        shown,
                        exchange.index,
                        name,
                        f"{_kib(size)}, more than {_kib(max_body_bytes)}{kind}",
                    )
                )
        seen: set[tuple[str, str]] = set()
        document = {
            "request": {"uri": exchange.request.uri, "body": exchange.request.body},
            "response": {"body": exchange.body},
        }
        for where, text in texts_of(document):
            for pattern, what in _IDS:
                if pattern.search(text) and (where, what) not in seen:
                    seen.add((where, what))
                    findings.append(Finding(shown, exchange.index, where, what))
    return findings


def orphans(cassette_dir: Path, used: set[Path], files: list[Path]) -> list[Path]:
    """Cassette files below ``cassette_dir`` that no collected test uses."""
    root = cassette_dir.resolve()
    out = []
    for path in files:
        resolved = path.resolve()
        if resolved in used:
            continue
        try:
            resolved.relative_to(root)
        except ValueError:
            continue
        out.append(path)
    return out

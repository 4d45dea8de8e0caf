"""Find Keyward tokens in files: where they are and which key, never the secret.

A match must have the token's shape and a correct checksum (`tokens.looks_like_token`),
so placeholders, truncated examples and made-up look-alikes are not reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from apikeys import tokens

SKIPPED_DIRECTORIES = {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    token: tokens.ParsedToken

    @property
    def prefix(self) -> str:
        return self.token.prefix

    def __str__(self) -> str:
        what = "a publishable Keyward key" if self.token.publishable else "a Keyward API key"
        return f"{self.path}:{self.line}: {self.prefix}_… ({what}; checksum valid)"


@dataclass(frozen=True)
class NearMiss:
    """Text of exactly a token's shape whose checksum fails: a placeholder or a typo."""

    path: str
    line: int
    prefix: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.prefix}_… (shaped like a Keyward API key, but its "
            "checksum fails: a placeholder or a mistyped key, not a usable one)"
        )


def tokens_in(text: str) -> Iterator[tokens.ParsedToken]:
    """Yield every whole token with a correct checksum in `text`: secret and publishable."""
    for match in tokens.token_search_pattern().finditer(text):
        length = tokens.token_length(match.group("prefix"))
        for candidate in {match.group(0), match.group(0)[:length]}:
            if tokens.looks_like_token(candidate):
                yield tokens.parse(candidate)
                break


def near_misses_in(text: str) -> Iterator[str]:
    """Yield the prefix of every token-shaped string in `text` whose checksum fails."""
    pattern = tokens.token_pattern()
    for match in tokens.token_search_pattern().finditer(text):
        prefix = match.group("prefix")
        candidate = match.group(0)[: tokens.token_length(prefix)]
        if pattern.match(candidate) and not tokens.looks_like_token(candidate):
            yield prefix


def scan_file(path: Path) -> Iterator[Finding | NearMiss]:
    """Yield the tokens, and the token-shaped near misses, in one file, line by line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("latin-1")
            for token in tokens_in(text):
                yield Finding(str(path), number, token)
            for prefix in near_misses_in(text):
                yield NearMiss(str(path), number, prefix)


def files_under(paths: Iterable[str]) -> Iterator[Path]:
    """Yield the files named, and the files inside the directories named."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for root, directories, files in os.walk(path):
                directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
                for file in sorted(files):
                    candidate = Path(root, file)
                    if candidate.is_file() and not candidate.is_symlink():
                        yield candidate
        elif path.is_file():
            yield path


def scan(paths: Iterable[str], *, include_publishable: bool = False) -> list[Finding | NearMiss]:
    """Return every token, and every near miss, found in `paths`.

    Publishable keys are meant to sit in web pages and apps, so they are left out
    unless `include_publishable` asks for them.
    """
    return [
        finding
        for path in files_under(paths)
        for finding in scan_file(path)
        if include_publishable or not isinstance(finding, Finding) or not finding.token.publishable
    ]

"""Image references: the distribution/reference grammar, so malformed names fail before a pull.

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
(github.com/distribution/reference, regexp.go). A malformed reference is InvalidImageName:
terminal, never retried.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
NAME_MAX = 255


class InvalidReference(ValueError):
    """Not a valid image reference; the message says why."""


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str
    digest: str

    @property
    def registry(self) -> str:
        """The registry host a `docker login` needs (Docker Hub when the name has no domain)."""
        first, _, rest = self.name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"

    @property
    def pull_tag(self) -> str:
        return self.digest or self.tag or "latest"


def parse_reference(text: str) -> Reference:
    match = _REFERENCE.match(text)
    if not match:
        raise InvalidReference(f"invalid reference format: {text!r}")
    name = match.group("name")
    if len(name) > NAME_MAX:
        raise InvalidReference(f"repository name longer than {NAME_MAX} characters: {text!r}")
    return Reference(name=name, tag=match.group("tag") or "", digest=match.group("digest") or "")

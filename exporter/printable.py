"""Text from outside (config keys, container names from an API) made safe for one terminal line."""
from __future__ import annotations


def printable(text: str) -> str:
    """`text` with control, line-separator and other non-printable characters escaped (`\\x1b`,
    `\\n`, `\\x85`): an error stays one line and a name cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)

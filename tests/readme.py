"""The README's shell blocks, so install tests run what a user would copy."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_blocks(heading: str) -> list[str]:
    """The ```sh blocks of the README section titled `heading` (up to the next heading)."""
    text = README.read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ )", text, re.M | re.S)
    assert match, f"README.md: no section {heading!r}"
    return re.findall(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)


def substituted(block: str, replacements: dict[str, str]) -> str:
    """The block with the few strings a test machine must change; each must occur."""
    for old, new in replacements.items():
        assert old in block, f"README block no longer contains {old!r}:\n{block}"
        block = block.replace(old, new)
    return block

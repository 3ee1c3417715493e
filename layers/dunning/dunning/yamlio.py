"""YAML parsing for the packaged data (rulebooks, strategies, regions, templates, the lender profile).

PyYAML's safe loader, through libyaml's C parser when the installed PyYAML has it (the layer's wheels
do): the same documents (tests/unit/test_yamlio.py checks every packaged file), about thirty times
faster, which matters because every function parses its data on its first invocation.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """``yaml.safe_load`` with the C parser when available; raises ``yaml.YAMLError`` on bad input."""
    return yaml.load(stream, Loader=SafeLoader)

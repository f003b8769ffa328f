"""The one way yolossl reads YAML it did not write: safe tags only, no aliases, no hang, one-line errors.

`yaml.safe_load` already refuses `!!python/...` tags, but it expands aliases: ten anchors each
listing the previous one ten times turn a 560-byte file into a billion-element value. Data and
config YAMLs have no use for aliases, so they are refused outright, naming the file and the line.

    >>> meta = load_yaml_file(Path("data.yaml"), "data YAML")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from yolossl._fs import NotARegularFile, read_regular_file
from yolossl.errors import YolosslError, first_line


class _AliasRefused(yaml.YAMLError):
    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(f"aliases are not accepted (*{anchor} on line {line}): they can expand without bound")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing every alias node (`*name`) before it is composed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.anchor, event.start_mark.line + 1)
        return super().compose_node(parent, index)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse `text` (from `source`, named in the error) with the no-alias safe loader."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass: safe tags only
    except _AliasRefused as e:
        raise YolosslError(f"{source}: {e}") from None
    except RecursionError:
        raise YolosslError(f"{source}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as e:
        raise YolosslError(f"{source}: not valid YAML ({first_line(e)})") from e


def load_yaml_file(path: Path, what: str) -> Any:
    """Read and parse a user's YAML file; `what` ("data YAML", "config file") names it when it is missing."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise YolosslError(f"{path}: {what} not found") from None
    except NotARegularFile as e:
        raise YolosslError(f"{path}: {e.kind}, not a {what}; not read") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YolosslError(f"{path}: not valid YAML (not UTF-8 text: {first_line(e)})") from e
    return load_yaml_text(text, str(path))

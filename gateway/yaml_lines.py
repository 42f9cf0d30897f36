"""Line numbers for configuration errors: where in a YAML file a pydantic ``loc`` points."""

from __future__ import annotations

from collections.abc import Sequence

import yaml


def line_of(text: str, loc: Sequence[int | str]) -> int | None:
    """1-based line of the node at ``loc`` (or of its deepest existing parent)."""
    return lines_of(text, [loc])[0]


def lines_of(text: str, locs: Sequence[Sequence[int | str]]) -> list[int | None]:
    """``line_of`` for many locations, composing the document once."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return [None] * len(locs)
    return [_line(node, loc) for loc in locs]


def _line(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line

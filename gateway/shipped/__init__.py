"""The data that ships inside the package: the sample schema sets with their catalog, code
lists, AGS list and sample messages (``schemas``), and the example configuration (``config``).

The repository keeps them at the top level, ``schemas/`` and ``deploy/config/``, where
operators and reviewers look for them; ``schemas`` and ``config`` in this package are relative
symlinks to those folders. Building a wheel follows the symlinks (the wheel holds real files),
an editable install resolves them into the checkout, so ``importlib.resources`` finds the same
files both ways, and nothing depends on where the source tree or the working directory is.

lxml, xmlschema and Saxon open schema files, and what they include, by path, for as long as
the process runs (and in the intake child processes), so the data must be real files: a pip
install unpacks them, and a zipped install is refused here with a clear error. That is why this
hands out ``Path`` objects instead of wrapping each use in ``importlib.resources.as_file``,
which on Python 3.11 cannot extract a directory anyway.
"""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path


def _directory(name: str) -> Path:
    resource = files(__name__).joinpath(name)
    if not isinstance(resource, Path) or not resource.is_dir():
        raise RuntimeError(
            f"xoev-gateway's shipped {name!r} data is not a directory on the file system "
            f"({resource}); install the package with pip (not zipped)"
        )
    return resource.resolve()


def schemas_dir() -> Path:
    """The shipped schema catalog directory (``catalog.yaml``, ``codelists/``, ``samples/``)."""
    return _directory("schemas")


def example_config_dir() -> Path:
    """The shipped example configuration; read it, never write into it (it may be inside a
    read-only site-packages)."""
    return _directory("config")


def copy_example_config(target: Path) -> Path:
    """Bring ``target`` up to date with the shipped example configuration and return it.

    The example's file drops write relative to the configuration directory (``../out/…``), so
    a running gateway uses a copy (under its data directory), never the package's own files.
    Each changed file is replaced atomically, so a second process (``api`` beside ``worker``
    on the same data directory) that copies or loads at the same moment reads whole files;
    files that are no longer shipped are removed, so the copy is no place for own changes.
    """
    source = example_config_dir()
    shipped = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    for relative in sorted(shipped):
        _replace_if_changed(source / relative, target / relative)
    for path in target.rglob("*"):
        # Dot files: another process's copies in flight.
        stale = path.relative_to(target) not in shipped and not path.name.startswith(".")
        if stale and path.is_file():
            path.unlink()
    return target


def _replace_if_changed(source: Path, dest: Path) -> None:
    data = source.read_bytes()
    if dest.is_file() and dest.read_bytes() == data:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

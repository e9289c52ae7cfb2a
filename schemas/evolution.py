"""Released versions of the subject schemas, and the check that the current schemas still read them.

A *subject* is a top-level record: one that no other schema file refers to (``omnichannel.event.Event``
and the ``omnichannel.output`` records that subscribers read). Each released version of a subject is kept
as ``schemas/released/<fullname>/v<N>.avsc``: the fully expanded JSON of :func:`schemas.loader.canonical_json`
at release time. :func:`check_released` checks the current schemas against every one of them with
:func:`schemas.compat.check_backward_transitive`, so data written under any released version stays readable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from schemas.compat import Incompatibility, check_backward_transitive
from schemas.errors import CompatibilityError, SchemaError
from schemas.loader import SCHEMA_DIR, all_fullnames, canonical_json

__all__ = [
    "RELEASED_DIR",
    "check_released",
    "release",
    "released_text",
    "released_versions",
    "subjects",
]

RELEASED_DIR: Final[Path] = Path(__file__).resolve().parent / "released"
"""Folder holding ``<fullname>/v<N>.avsc`` for every released version of every subject."""

_VERSION_FILE: Final = re.compile(r"^v([1-9][0-9]*)\.avsc$")


def _references(node: Any, namespace: str, known: set[str]) -> set[str]:
    """Full names of the known named types a raw ``.avsc`` JSON value mentions (docs excluded)."""
    found: set[str] = set()
    if isinstance(node, str):
        for candidate in (node, f"{namespace}.{node}"):
            if candidate in known:
                found.add(candidate)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item, namespace, known)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in ("doc", "name", "namespace", "aliases", "symbols", "default"):
                found |= _references(value, namespace, known)
    return found


def subjects() -> list[str]:
    """Full names of the top-level records (referred to by no other schema file), sorted."""
    known = set(all_fullnames())
    referenced: set[str] = set()
    records: list[str] = []
    for name in sorted(known):
        path = SCHEMA_DIR / f"{name}.avsc"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SchemaError(f"cannot read {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise SchemaError(f"{path.name} must hold one named type (a JSON object)")
        namespace = name.rsplit(".", 1)[0]
        referenced |= _references(raw, namespace, known) - {name}
        if raw.get("type") == "record":
            records.append(name)
    return [name for name in records if name not in referenced]


def _released_files(fullname: str) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``v<N>.avsc`` released for ``fullname``, oldest first."""
    folder = RELEASED_DIR / fullname
    if not folder.is_dir():
        return []
    found = [(match, path) for path in folder.iterdir() if (match := _VERSION_FILE.match(path.name))]
    return sorted((int(match.group(1)), path) for match, path in found)


def released_versions(fullname: str) -> list[str]:
    """JSON texts of every released version of ``fullname``, oldest first (empty if never released)."""
    return [path.read_text(encoding="utf-8") for _, path in _released_files(fullname)]


def released_text(fullname: str) -> str:
    """The text a new release of ``fullname`` is stored as: :func:`canonical_json`, indented for review."""
    return json.dumps(json.loads(canonical_json(fullname)), indent=2, ensure_ascii=False) + "\n"


def check_released() -> dict[str, list[Incompatibility]]:
    """Check every subject (current or released) against all its released versions.

    Returns ``fullname -> problems`` for every subject and every folder in :data:`RELEASED_DIR`; an empty
    list means the current schema reads data written with every released version (or none was released).
    A released subject whose schema file is gone is reported as a problem.
    """
    current = set(all_fullnames())
    released = {path.name for path in RELEASED_DIR.iterdir() if path.is_dir()} if RELEASED_DIR.is_dir() else set()
    results: dict[str, list[Incompatibility]] = {}
    for name in sorted(set(subjects()) | released):
        files = _released_files(name)
        if name not in current:
            results[name] = [
                Incompatibility(
                    name.rsplit(".", 1)[-1],
                    f"released as {RELEASED_DIR.name}/{name}/v{files[-1][0] if files else '?'}.avsc but "
                    f"{SCHEMA_DIR.name}/{name}.avsc is gone: restore it, subscribers still read this subject",
                )
            ]
            continue
        texts = [path.read_text(encoding="utf-8") for _, path in files]
        labels = [f"v{number}" for number, _ in files]
        results[name] = check_backward_transitive(canonical_json(name), texts, labels=labels)
    return results


def release(fullname: str) -> Path | None:
    """Store the current schema of ``fullname`` as its next released version.

    Returns the file written, or ``None`` when the current schema equals the latest released one. Raises
    :class:`CompatibilityError` if the current schema cannot read every released version.
    """
    files = _released_files(fullname)
    text = released_text(fullname)
    if files and json.loads(files[-1][1].read_text(encoding="utf-8")) == json.loads(text):
        return None
    problems = check_backward_transitive(
        canonical_json(fullname),
        [path.read_text(encoding="utf-8") for _, path in files],
        labels=[f"v{number}" for number, _ in files],
    )
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise CompatibilityError(f"{fullname} cannot be released, it would break readers: {listed}")
    number = files[-1][0] + 1 if files else 1
    path = RELEASED_DIR / fullname / f"v{number}.avsc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

"""Resumable batch imports of channel files (POS exports, back-office feeds), one acknowledged batch at a time.

The importer reads the file line by line, maps each line with the channel adapter's pure mapping, and
publishes in batches. After Kafka acknowledged a batch, and only then, it saves the byte offset and line
number reached in a position file under the state directory. A re-run of the same command after a crash,
an outage or an invalid line resumes after the last acknowledged line, so nothing acknowledged is
published twice by the importer. (A crash between the acknowledgement and the save replays at most one
batch; its events keep their deterministic ids, so consumers deduplicate them.)

The position also keeps a fingerprint of the file's first bytes: a file replaced by another one is
refused instead of being resumed at a meaningless offset. Appending lines to an imported file is fine:
the next run imports only the new lines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from connectors.channels.base import ChannelAdapter
from connectors.envelope import Clock, EventTimeWindow, normalise, system_clock_ms
from connectors.errors import ImportLineError, ImportPositionError, InvalidEventError, PublishUnavailableError
from connectors.publisher import Delivery
from schemas.validation import Problem

__all__ = ["FORMATS", "ImportReport", "Position", "Rejected", "detect_format", "import_file", "position_path"]

FORMATS: Final = ("csv", "jsonl")
_SUFFIXES: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# Bytes of the file's start hashed into the position: enough to tell two exports apart, cheap to re-read.
_FINGERPRINT_BYTES: Final = 65_536

Publish = Callable[[Sequence[Mapping[str, Any]]], Sequence[Delivery]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Position:
    """How far an import got: the byte offset and line number after the last acknowledged line."""

    file: str
    offset: int
    line: int
    published: int
    fingerprint: str


@dataclass(frozen=True)
class Rejected:
    """A line skipped with ``--skip-invalid``, and why."""

    line: int
    problems: list[Problem]


@dataclass
class ImportReport:
    """What one run did."""

    file: Path
    format: str
    position_file: Path
    first_line: int
    last_line: int = 0
    published: int = 0
    published_total: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from the file name; :class:`ImportPositionError` asks for ``--format`` otherwise."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise ImportPositionError(
            f"cannot tell the format of {path.name} from its name: pass --format csv|jsonl"
        ) from None


def position_path(state_dir: Path, adapter: str, path: Path) -> Path:
    """Where the position of importing ``path`` with ``adapter`` is kept (one file per imported file)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return state_dir / "imports" / f"{adapter}-{path.name}-{digest}.json"


def import_file(
    path: Path,
    *,
    adapter: ChannelAdapter,
    publish: Publish,
    position_file: Path,
    fmt: str | None = None,
    batch_size: int = 500,
    clock: Clock = system_clock_ms,
    restart: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    window: EventTimeWindow | None = None,
) -> ImportReport:
    """Import ``path`` (resuming from ``position_file`` unless ``restart``); see the module docstring.

    Raises :class:`ImportLineError` at the first invalid line (unless ``skip_invalid``: then the line is
    reported and skipped), :class:`PublishUnavailableError` when Kafka does not acknowledge a batch, and
    :class:`ImportPositionError` when the saved position does not fit the file. With ``window``, a line whose
    event time falls outside it (around the import's clock) is invalid like any other. In each case every line
    before the failure that Kafka acknowledged is recorded, and the same command resumes after it.
    """
    if adapter.file_format is None:
        raise ImportPositionError(f"the {adapter.name} adapter has no file format")
    fmt = fmt or detect_format(path)
    if fmt not in adapter.file_format.formats:
        raise ImportPositionError(f"{adapter.name} files are {' or '.join(adapter.file_format.formats)}, not {fmt}")
    to_event = adapter.file_format.to_event
    with path.open("rb") as handle:
        saved = None if restart else _load(position_file)
        if saved is not None:
            _check_fits(saved, path, handle, position_file)
        header = _csv_header(handle) if fmt == "csv" else None
        offset = saved.offset if saved else handle.tell()
        line = saved.line if saved else (1 if header is not None else 0)
        total = saved.published if saved else 0
        handle.seek(offset)
        report = ImportReport(path, fmt, position_file, first_line=line + 1, last_line=line, published_total=total)
        batch: list[dict[str, Any]] = []

        def commit(end_offset: int, end_line: int) -> None:
            if batch:
                try:
                    publish(batch)
                except PublishUnavailableError as exc:
                    raise PublishUnavailableError(
                        f"{exc}. Lines up to {report.last_line} are stored; re-run the same command to resume "
                        f"from line {report.last_line + 1}"
                    ) from exc
                report.published += len(batch)
                report.published_total += len(batch)
                batch.clear()
            _save(
                position_file,
                Position(
                    str(path.resolve()), end_offset, end_line, report.published_total, _fingerprint(handle, end_offset)
                ),
            )
            report.last_line = end_line
            if progress is not None:
                progress(end_offset, report.published_total)

        while True:
            start = handle.tell()
            raw = handle.readline()
            if not raw:
                break
            line += 1
            if not raw.strip():
                continue
            try:
                record = _parse(raw, header, line)
                event = normalise(
                    to_event(record),
                    received_at_ms=clock(),
                    channel=adapter.channel,
                    source_system=adapter.source_system,
                    window=window,
                )
            except InvalidEventError as exc:
                if not skip_invalid:
                    commit(start, line - 1)
                    raise ImportLineError(
                        line,
                        exc.problems,
                        hint=f"Lines before it are stored. Fix the line and re-run the same command to resume "
                        f"from line {line}, or pass --skip-invalid to report and skip such lines",
                    ) from exc
                report.rejected.append(Rejected(line, exc.problems))
                continue
            batch.append(event)
            if len(batch) >= batch_size:
                commit(handle.tell(), line)
        commit(handle.tell(), line)
    return report


def _parse(raw: bytes, header: list[str] | None, line: int) -> Mapping[str, Any]:
    text = _decode(raw).strip()
    if header is None:
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidEventError([Problem("", f"not valid JSON: {exc}")]) from exc
        if not isinstance(record, dict):
            raise InvalidEventError([Problem("", f"expected a JSON object, got {type(record).__name__}")])
        return record
    values = _csv_row(text)
    if len(values) != len(header):
        raise InvalidEventError([Problem("", f"{len(values)} columns where the header has {len(header)}")])
    return {name: value for name, value in zip(header, values, strict=True) if value != ""}


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError(
            [
                Problem(
                    "",
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); export the file as "
                    "UTF-8, or convert it, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`",
                )
            ]
        ) from exc


def _csv_row(text: str) -> list[str]:
    try:
        return next(csv.reader([text]))
    except csv.Error as exc:
        reason = str(exc)
        if "field limit" in reason:  # the csv module's guard against runaway fields
            reason = f"a field is longer than {csv.field_size_limit() // 1024} KiB, the most a CSV field may hold"
        raise InvalidEventError([Problem("", f"not a valid CSV row: {reason}")]) from exc


def _csv_header(handle: IO[bytes]) -> list[str]:
    handle.seek(0)
    first = handle.readline()
    try:
        # The header cannot be skipped (every line is read through it), even with --skip-invalid.
        names = _csv_row(_decode(first.removeprefix(b"\xef\xbb\xbf")).strip()) if first.strip() else []
    except InvalidEventError as exc:
        raise ImportLineError(1, exc.problems, hint="Line 1 must name the columns; nothing was imported") from exc
    if not names:
        raise ImportPositionError("the CSV file is empty: its first line must name the columns")
    return [name.strip() for name in names]


def _fingerprint(handle: IO[bytes], upto: int) -> str:
    size = min(upto, _FINGERPRINT_BYTES)
    return f"{size}:{hashlib.sha256(os.pread(handle.fileno(), size, 0)).hexdigest()}"


def _check_fits(saved: Position, path: Path, handle: IO[bytes], position_file: Path) -> None:
    size = os.fstat(handle.fileno()).st_size
    fits = saved.file == str(path.resolve()) and size >= saved.offset
    if fits:
        prefix = int(saved.fingerprint.split(":", 1)[0])
        fits = _fingerprint(handle, prefix) == saved.fingerprint
    if not fits:
        raise ImportPositionError(
            f"{path} is not the file imported up to line {saved.line} (it was replaced or truncated; position in "
            f"{position_file}): pass --restart to import it from the beginning"
        )


def _load(position_file: Path) -> Position | None:
    try:
        return Position(**json.loads(position_file.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ImportPositionError(
            f"the position file {position_file} is unreadable ({exc}): delete it or pass --restart"
        ) from exc


def _save(position_file: Path, position: Position) -> None:
    """Write the position atomically (temporary file, fsync, rename): a crash leaves the old or the new one."""
    position_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = position_file.with_suffix(".tmp")
    with temporary.open("w") as out:
        json.dump(asdict(position), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, position_file)

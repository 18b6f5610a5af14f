"""Streaming imports of events, customers and orders from CSV or JSONL.

The file is read line by line and ingested in batches, a few batches to a committed transaction
(`SIZES`), so memory stays flat on a 10 GB file and an interrupted import can simply be run again:
every row maps to a stable event id, so rows already stored come back as duplicates and change nothing.

A large file is read, parsed and validated in a second process while this one stores the batch
before (`_pieces_from_child`), so on a machine with two cores the reading costs no time of its own.
Both halves are the same functions a small file runs in-process.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.customers.identities import STANDARD_IDENTITY_TYPES
from siyu.customers.resolution import KnownOwners
from siyu.db.bulk import sqlite_time
from siyu.db.session import bulk_loading, transaction
from siyu.events.decoding import decode_event_line
from siyu.events.service import (
    ItemResult,
    RollupsDue,
    add_due_rollups,
    custom_event_type_names,
    ingest_validated,
)
from siyu.events.validation import Rejection, ValidEvent, validate_event
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.workspaces.service import WorkspaceContext

KINDS = ("events", "customers", "orders")
# Rows validated and resolved together (what the storing process holds in memory), and rows stored in
# one transaction, their customers' rollups added once at its end. At 100,000 customers most of them
# are in every batch, so fewer, larger transactions update far fewer rollups per row (and SQLite
# writes each touched index page to its log once per commit). On SQLite a transaction holds sixteen
# batches, about eight seconds of the single writer's lock (1M events: 240,000 rows to a transaction
# 29.0-31.5 s, 120,000 rows 31.7-31.8 s); its batches are small, as a decoded row takes about 1.9 KB
# (15,000-row batches: the storing process peaks at 327 MB, 375 MB with 30,000, and is no slower).
# PostgreSQL did best with one larger batch per transaction.
BATCH = 30_000
SIZES = {"sqlite": (BATCH // 2, 8 * BATCH), "postgresql": (2 * BATCH, 2 * BATCH)}
# Smaller files are read in-process: starting the reading process costs about a second.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
PIECE = 2000  # rows the reading process validates and sends at a time
PROFILE_COLUMNS = ("name", "gender", "birthday", "email", "city", "province", "acquisition_channel")
ORDER_COLUMNS = ("order_id", "paid_at", "occurred_at", "channel", "currency", "total_fen", "discount_fen",
                 "coupon_code")
ITEM_COLUMNS = ("sku", "name", "category", "quantity", "unit_price_fen")


@dataclass
class ImportSummary:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_file: Path | None = None
    rows: int = 0
    errors_sample: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One logical record: its original text/values (for the rejects file) and the event it became."""

    source: Any
    event: Any = None
    error: tuple[str | None, str] | None = None


class PreparedRow(msgspec.Struct, array_like=True, gc=False):
    source: Any  # what the rejects file shows; a JSONL row travels as its line's offset (RejectsWriter)
    outcome: ValidEvent | Rejection | None  # None when the row could not be read (`error`)
    error: tuple[str | None, str] | None


class Prepared(msgspec.Struct, array_like=True):
    """Rows read and validated, ready to store: a batch, or a piece of one (`complete` on its last).
    Structs (like the events they hold) so that pieces cross between processes as MessagePack."""

    rows: list[PreparedRow]
    received_at: datetime  # one time for a whole batch: validated against, stored as received_at
    position: int  # bytes of the file read once these rows were
    complete: bool = True


class ByteCounter:
    """Wraps a binary file to report how far the import has read (for the progress bar)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.position = 0
        self.line_start = 0  # offset of the line last read

    def lines(self) -> Iterator[str]:
        for raw in self.raw_lines():
            yield _text_of(raw)

    def raw_lines(self) -> Iterator[bytes]:
        for raw in self.handle:
            self.line_start = self.position
            self.position += len(raw)
            yield raw


def _text_of(raw: bytes) -> str:
    return (raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw).decode()


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValidationFailed("file must end in .csv or .jsonl", field="file")


def import_file(engine: Engine, ctx: WorkspaceContext, path: Path, kind: str,
                progress: Callable[[int], None] | None = None, batch_size: int | None = None, *,
                parallel: bool | None = None) -> ImportSummary:
    """Import a file; `parallel` reads it in a second process (by default when it is large). Batches
    and transactions have the sizes that suit the database (`SIZES`) unless `batch_size` is given."""
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not path.is_file():
        raise ValidationFailed(f"no such file: {path}", field="file")
    file_format = detect_format(path)
    summary = ImportSummary()
    rejects_path = path.with_name(f"{path.stem}.rejected{path.suffix}")
    with transaction(engine) as session:
        custom_types = custom_event_type_names(session, ctx.id) if ctx.strict_events else frozenset()
    batch_rows, transaction_rows = SIZES.get(engine.dialect.name, (BATCH, BATCH))
    if batch_size is not None:
        batch_rows, transaction_rows = batch_size, batch_size * transaction_rows // batch_rows
    reading = ReadingJob(path, file_format, kind, batch_rows, ctx, custom_types, clock.get_clock(),
                         sqlite_times=engine.dialect.name == "sqlite")
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_MIN_BYTES
    with (RejectsWriter(rejects_path, file_format, path) as rejects, _few_collections(),
          bulk_loading(engine) as (loader, committed)):
        known = KnownOwners()
        batches = _whole_batches(_pieces_from_child(reading) if parallel else reading.pieces())
        while _ingest_transaction(loader, ctx, batches, transaction_rows, summary, rejects, known, progress):
            committed()
    summary.rejected_file = rejects_path if summary.rejected else None
    if not summary.rejected and rejects_path.exists():
        rejects_path.unlink()
    return summary


@contextmanager
def _few_collections() -> Iterator[None]:
    """An import allocates millions of small containers that reference counting frees in time; with the
    default thresholds the cyclic collector rescans every batch's live objects again and again, half the
    cost of validating. Collect rarely while importing (cycles are still collected): every million
    allocations, which took the collector's share of storing from 6 % to under 1 %."""
    thresholds = gc.get_threshold()
    gc.set_threshold(1_000_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


@dataclass
class ReadingJob:
    """Reading, parsing and validating a file: in this process or in another."""

    path: Path
    file_format: str
    kind: str
    batch_size: int
    ctx: WorkspaceContext
    custom_types: frozenset[str]
    clock: clock.Clock
    piece_size: int = PIECE
    sqlite_times: bool = False  # format each event's time as a SQLite store writes it (ValidEvent)

    def pieces(self) -> Iterator[Prepared]:
        """The file's rows prepared, in pieces of at most `piece_size` rows: few raw rows in memory at a time.
        The first batches are small, so that the writer starts early, and double up to `batch_size`."""
        with self.path.open("rb") as handle:
            counter = ByteCounter(handle)
            batch = _BatchState(self.clock.now())
            rows: list[PreparedRow] = []
            size = min(self.batch_size, self.piece_size)
            for row in self._prepared_rows(counter, batch):
                rows.append(row)
                batch.count += 1
                if batch.count == size:
                    yield Prepared(rows, batch.received_at, counter.position, complete=True)
                    rows, batch.count, batch.received_at = [], 0, self.clock.now()
                    size = min(self.batch_size, size * 2)
                elif len(rows) == self.piece_size:
                    yield Prepared(rows, batch.received_at, counter.position, complete=False)
                    rows = []
            if batch.count:
                yield Prepared(rows, batch.received_at, counter.position, complete=True)

    def _prepared_rows(self, counter: ByteCounter, batch: _BatchState) -> Iterator[PreparedRow]:
        rows = self._read_rows(counter, batch)
        if not self.sqlite_times:
            yield from rows
            return
        for row in rows:
            if type(row.outcome) is ValidEvent:
                row.outcome.sqlite_occurred_at = sqlite_time(row.outcome.occurred_at)
            yield row

    def _read_rows(self, counter: ByteCounter, batch: _BatchState) -> Iterator[PreparedRow]:
        if self.file_format == "jsonl" and self.kind == "events":
            yield from self._event_lines(counter, batch)
            return
        by_offset = self.file_format == "jsonl"  # one line per row: sent as its offset, read back if rejected
        for row in _rows(counter.lines(), self.file_format, self.kind):
            yield self._prepare(row, counter.line_start if by_offset else row.source, batch.count, batch.received_at)

    def _event_lines(self, counter: ByteCounter, batch: _BatchState) -> Iterator[PreparedRow]:
        """Events of a JSONL file: the common ones decoded and validated in one step (events.decoding),
        the others parsed and validated on the general path."""
        ctx = self.ctx
        for number, raw in enumerate(counter.raw_lines(), start=1):
            event = decode_event_line(raw, batch.count, ctx, batch.received_at)
            if event is not None:
                yield PreparedRow(counter.line_start, event, None)
                continue
            line = _text_of(raw)
            if line.strip():
                record = _jsonl_record(line, number)
                row = record if isinstance(record, Row) else Row(line, record)
                yield self._prepare(row, counter.line_start, batch.count, batch.received_at)

    def _prepare(self, row: Row, source: Any, index: int, received_at: datetime) -> PreparedRow:
        if row.error is not None:
            return PreparedRow(source, None, row.error)
        return PreparedRow(source, validate_event(index, row.event, self.ctx, self.custom_types, received_at), None)


@dataclass
class _BatchState:
    """Where reading is in the batch it fills: rows so far, and the time they are validated against."""

    received_at: datetime
    count: int = 0


def _whole_batches(pieces: Iterable[Prepared]) -> Iterator[Prepared]:
    rows: list[PreparedRow] = []
    for piece in pieces:
        rows.extend(piece.rows)
        if piece.complete:
            yield Prepared(rows, piece.received_at, piece.position)
            rows = []


def _pieces_from_child(job: ReadingJob) -> Iterator[Prepared]:
    """The job's pieces, prepared by a second process while this one stores the batch before.

    The process is a fresh interpreter started by hand: multiprocessing's "spawn" would re-run the
    caller's main module in it, and "fork" would copy this process's threads, locks and database
    connections. Pieces come back as MessagePack through a pipe, each length first. A thread here takes
    them in as they come, up to one batch ahead (then the reader waits), so neither process waits
    for the other and memory stays flat."""
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
    child = subprocess.Popen([sys.executable, "-c", "from siyu.events.importer import serve_reading; serve_reading()",
                              str(write_fd)], stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env)
    os.close(write_fd)
    received: queue.Queue[Any] = queue.Queue(maxsize=job.batch_size // job.piece_size + 1)
    stop = threading.Event()
    stream = open(read_fd, "rb")  # noqa: SIM115 - closed below, after the receiving thread
    receiver = threading.Thread(target=_receive, args=(stream, child, received, stop), daemon=True,
                                name="siyu-import-receiver")
    try:
        assert child.stdin is not None
        with child.stdin:
            child.stdin.write(pickle.dumps(job))
        receiver.start()
        while (message := received.get()) is not None:
            if isinstance(message, BaseException):
                raise message
            yield _decode_piece(message)
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        child.wait()
        if receiver.is_alive():
            receiver.join()
        stream.close()


def _receive(stream: IO[bytes], child: subprocess.Popen[bytes], received: queue.Queue[Any],
             stop: threading.Event) -> None:
    while not stop.is_set():
        header = stream.read(8)
        if len(header) < 8:
            message: Any = RuntimeError(f"the import's reading process stopped (exit code {child.wait()})")
        else:
            # A piece waits as the bytes it came in (a seventh of its objects' memory) until it is stored.
            data = stream.read(int.from_bytes(header[:7], "little"))
            message = data if header[7:] == _PIECE else pickle.loads(data)
        while not stop.is_set():
            with suppress(queue.Full):
                received.put(message, timeout=0.1)
                break
        if message is None or isinstance(message, BaseException):
            return


def serve_reading() -> None:
    """The reading process (see `_pieces_from_child`): a job on stdin, prepared pieces to the pipe."""
    job = pickle.load(sys.stdin.buffer)
    with open(int(sys.argv[1]), "wb") as stream, _few_collections(), suppress(BrokenPipeError):
        try:
            for piece in job.pieces():
                _send_piece(stream, piece)
            _send(stream, None)
        except Exception as exc:  # raised again by the importing process
            try:
                _send(stream, exc)
            except (pickle.PicklingError, TypeError, AttributeError):
                _send(stream, RuntimeError(f"reading the file failed: {exc!r}"))


# What a message holds: a piece of rows as MessagePack (validated values always fit it), or the end
# (None) or an error, pickled.
_PIECE, _CONTROL = b"P", b"C"
_piece_encoder = msgspec.msgpack.Encoder()
_piece_decoder = msgspec.msgpack.Decoder(Prepared)


def _send_piece(stream: IO[bytes], piece: Prepared) -> None:
    _write(stream, _PIECE, _piece_encoder.encode(piece))


def _send(stream: IO[bytes], message: Any) -> None:
    _write(stream, _CONTROL, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _write(stream: IO[bytes], kind: bytes, data: bytes) -> None:
    """A message through the pipe: its length (7 bytes), its kind (1 byte), then its bytes."""
    stream.write(len(data).to_bytes(7, "little") + kind)
    stream.write(data)
    stream.flush()


def _decode_piece(data: bytes) -> Prepared:
    piece = _piece_decoder.decode(data)
    for row in piece.rows:  # MessagePack carries a date as its text: the one date among traits comes back
        outcome = row.outcome
        if type(outcome) is ValidEvent and outcome.traits and type(outcome.traits.get("birthday")) is str:
            outcome.traits["birthday"] = date.fromisoformat(outcome.traits["birthday"])
    return piece


def _ingest_transaction(engine: Engine, ctx: WorkspaceContext, batches: Iterator[Prepared], rows: int,
                        summary: ImportSummary, rejects: RejectsWriter, known: KnownOwners,
                        progress: Callable[[int], None] | None) -> bool:
    """Store the next batches, up to `rows` rows, in one transaction, and their customers' rollups
    once at its end; False when there was nothing left to store."""
    stored = 0
    try:
        with transaction(engine) as session:
            due = RollupsDue()
            for batch in batches:
                _ingest_batch(session, ctx, batch, summary, rejects, known, due)
                stored += len(batch.rows)
                if progress is not None:
                    progress(batch.position)
                if stored >= rows:
                    break
            add_due_rollups(session, ctx.id, due)
    except BaseException:
        known.forget()
        raise
    return stored > 0


def _ingest_batch(session: Session, ctx: WorkspaceContext, batch: Prepared, summary: ImportSummary,
                  rejects: RejectsWriter, known: KnownOwners, due: RollupsDue) -> None:
    ready = [row for row in batch.rows if row.outcome is not None]
    results = ingest_validated(session, ctx, [row.outcome for row in ready if row.outcome is not None],
                               batch.received_at, actor="import", known=known, rollups_due=due)
    for row, result in zip(ready, results, strict=True):
        _count(summary, row, result, rejects)
    for row in batch.rows:
        summary.rows += 1
        if row.error is not None:
            summary.rejected += 1
            rejects.write(row.source, row.error[0], row.error[1])
            _sample(summary, row.error[0], row.error[1])


def _count(summary: ImportSummary, row: PreparedRow, result: ItemResult, rejects: RejectsWriter) -> None:
    if result.status == "accepted":
        summary.accepted += 1
    elif result.status == "duplicate":
        summary.duplicate += 1
    else:
        summary.rejected += 1
        rejects.write(row.source, result.field, f"{result.code}: {result.message}")
        _sample(summary, result.field, f"{result.code}: {result.message}")


def _sample(summary: ImportSummary, field_name: str | None, reason: str) -> None:
    if len(summary.errors_sample) < 5:
        summary.errors_sample.append(f"{field_name or '-'}: {reason}")


# -- reading rows ------------------------------------------------------------------------------

def _rows(lines: Iterator[str], file_format: str, kind: str) -> Iterator[Row]:
    records = _jsonl_records(lines) if file_format == "jsonl" else _csv_records(lines)
    if kind == "orders":
        yield from _order_rows(records, file_format)
        return
    convert = _event_from_record if kind == "events" else _customer_from_record
    for source, record in records:
        if isinstance(record, Row):
            yield record
            continue
        try:
            yield Row(source, convert(record, file_format))
        except ValidationFailed as exc:
            yield Row(source, error=(exc.field, exc.message))


def _jsonl_records(lines: Iterator[str]) -> Iterator[tuple[Any, Any]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield line, _jsonl_record(line, number)


def _jsonl_record(line: str, number: int) -> Any:
    """The JSON object of a line, or the Row rejecting it."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Row(line, error=(None, f"line {number} is not valid JSON"))
    if not isinstance(record, dict):
        return Row(line, error=(None, f"line {number} is not a JSON object"))
    return record


def _csv_records(lines: Iterator[str]) -> Iterator[tuple[Any, Any]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    for values in reader:
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield values, Row(values, error=(None, f"row has {len(values)} columns, the header has {len(header)}"))
            continue
        yield values, {k: v for k, v in zip(header, values, strict=True) if v != ""}


def _identities_from_columns(record: dict[str, Any], verified_phone: bool) -> list[dict[str, Any]]:
    identities = []
    for key, value in record.items():
        if key.startswith("identity:"):
            identities.append({"type": key.split(":", 1)[1], "value": str(value)})
        elif key in STANDARD_IDENTITY_TYPES:
            identity: dict[str, Any] = {"type": key, "value": str(value)}
            if key == "phone":
                identity["verified"] = _truthy(record.get("phone_verified", verified_phone))
            if key == "wechat_openid" and record.get("wechat_appid"):
                identity["namespace"] = record["wechat_appid"]
            identities.append(identity)
    return identities


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "y", "是")


def _nested(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith(prefix):
            result[key[len(prefix):]] = _scalar(value)
    return result


def _scalar(value: Any) -> Any:
    """CSV cells are text; numbers stay numbers so money columns validate as integers."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _json_cell(value: Any, column: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed("is not valid JSON", field=column) from exc


def _event_from_record(record: dict[str, Any], file_format: str) -> dict[str, Any]:
    if file_format == "jsonl":
        return record
    event: dict[str, Any] = {"id": record.get("id"), "type": record.get("type"),
                             "occurred_at": record.get("occurred_at"),
                             "identities": _identities_from_columns(record, verified_phone=False)}
    properties = _json_cell(record["properties"], "properties") if "properties" in record else {}
    properties.update(_nested(record, "properties."))
    event["properties"] = properties
    traits = _nested(record, "traits.")
    if traits:
        event["traits"] = traits
    return event


def _row_id(kind: str, record: dict[str, Any]) -> str:
    digest = hashlib.sha1(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"import:{kind}:{digest}"


def _customer_from_record(record: dict[str, Any], file_format: str) -> dict[str, Any]:
    if file_format == "jsonl" and "identities" in record:
        identities = record["identities"]
        traits = dict(record.get("traits") or {})
        for column in PROFILE_COLUMNS:
            if column in record:
                traits[column] = record[column]
    else:
        identities = _identities_from_columns(record, verified_phone=True)
        traits = {c: record[c] for c in PROFILE_COLUMNS if c in record}
        attributes = _nested(record, "attributes.")
        if attributes:
            traits["attributes"] = attributes
    occurred_at = record.get("updated_at") or clock.now().isoformat()
    return {"id": str(record.get("id") or _row_id("customers", record)), "type": "identify",
            "occurred_at": occurred_at, "identities": identities, "traits": traits}


def _order_rows(records: Iterator[tuple[Any, Any]], file_format: str) -> Iterator[Row]:
    """JSONL: one order per line. CSV: one item per row, consecutive rows of one order_id grouped."""
    if file_format == "jsonl":
        for source, record in records:
            if isinstance(record, Row):
                yield record
                continue
            yield _order_row(source, record, record.get("items"))
        return
    current: list[tuple[Any, dict[str, Any]]] = []
    for source, record in records:
        if isinstance(record, Row):
            yield record
            continue
        if current and record.get("order_id") != current[0][1].get("order_id"):
            yield _csv_order(current)
            current = []
        current.append((source, record))
    if current:
        yield _csv_order(current)


def _csv_order(rows: list[tuple[Any, dict[str, Any]]]) -> Row:
    items = [{k: _scalar(r[k]) for k in ITEM_COLUMNS if k in r} for _, r in rows]
    for item in items:
        item.setdefault("quantity", 1)
    return _order_row([s for s, _ in rows], rows[0][1], items)


def _order_row(source: Any, record: dict[str, Any], items: Any) -> Row:
    order_id = record.get("order_id")
    if not order_id:
        return Row(source, error=("order_id", "order_id is required"))
    identities = record.get("identities") or _identities_from_columns(record, verified_phone=False)
    properties: dict[str, Any] = {k: _scalar(record[k]) for k in ORDER_COLUMNS
                                  if k in record and k not in ("paid_at", "occurred_at")}
    properties["order_id"] = str(order_id)
    properties["items"] = items or []
    if "total_fen" not in properties and isinstance(items, list):
        with suppress(KeyError, TypeError, ValueError):  # left out: the order is then rejected for it
            properties["total_fen"] = sum(int(i["quantity"]) * int(i["unit_price_fen"]) for i in items)
    event = {"id": f"order:{order_id}", "type": "order_paid",
             "occurred_at": record.get("paid_at") or record.get("occurred_at"),
             "identities": identities, "properties": properties}
    return Row(source, event)


class RejectsWriter:
    """Writes rejected rows with their reason next to the imported file, opened on first use."""

    def __init__(self, path: Path, file_format: str, imported: Path | None = None) -> None:
        self.path = path
        self.format = file_format
        self.imported = imported  # the file itself: a row given as an offset is read back from it
        self._handle: IO[str] | None = None
        self._csv: Any = None
        self._source: IO[bytes] | None = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in (self._handle, self._source):
            if handle is not None:
                handle.close()

    def _line_at(self, offset: int) -> str:
        if self._source is None:
            assert self.imported is not None
            self._source = self.imported.open("rb")
        self._source.seek(offset)
        return _text_of(self._source.readline())

    def write(self, source: Any, field_name: str | None, reason: str) -> None:
        if isinstance(source, int):
            source = self._line_at(source)
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8", newline="")
            if self.format == "csv":
                self._csv = csv.writer(self._handle)
                self._csv.writerow(["error_field", "error_reason", "row"])
        if self.format == "csv":
            sources = source if isinstance(source, list) and source and isinstance(source[0], list) else [source]
            for values in sources:
                self._csv.writerow([field_name or "", reason, *(values if isinstance(values, list) else [values])])
        else:
            lines = source if isinstance(source, list) else [source]
            for line in lines:
                text = line.strip() if isinstance(line, str) else orjson.dumps(line).decode()
                self._handle.write(orjson.dumps({"error_field": field_name, "error_reason": reason,
                                                 "line": text}).decode() + "\n")

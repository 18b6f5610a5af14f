"""Streaming imports of events, customers and orders from CSV or JSONL.

The file is read line by line and ingested in batches, each committed on its own, so memory stays
flat on a 10 GB file and an interrupted import can simply be run again: every row maps to a stable
event id, so rows already stored come back as duplicates and change nothing.
"""

from __future__ import annotations

import csv
import gc
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from siyu.customers.identities import STANDARD_IDENTITY_TYPES
from siyu.db.session import transaction
from siyu.events.service import ItemResult, ingest_events
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.workspaces.service import WorkspaceContext

KINDS = ("events", "customers", "orders")
BATCH = 5000
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


class ByteCounter:
    """Wraps a binary file to report how far the import has read (for the progress bar)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.position = 0

    def lines(self) -> Iterator[str]:
        for raw in self.handle:
            self.position += len(raw)
            yield raw.decode("utf-8-sig")


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValidationFailed("file must end in .csv or .jsonl", field="file")


def import_file(engine: Engine, ctx: WorkspaceContext, path: Path, kind: str,
                progress: Callable[[int], None] | None = None, batch_size: int = BATCH) -> ImportSummary:
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not path.is_file():
        raise ValidationFailed(f"no such file: {path}", field="file")
    file_format = detect_format(path)
    summary = ImportSummary()
    rejects_path = path.with_name(f"{path.stem}.rejected{path.suffix}")
    with path.open("rb") as handle, RejectsWriter(rejects_path, file_format) as rejects, _few_collections():
        counter = ByteCounter(handle)
        rows = _rows(counter.lines(), file_format, kind)
        for batch in _batches(rows, batch_size):
            _ingest_batch(engine, ctx, batch, summary, rejects)
            if progress is not None:
                progress(counter.position)
    summary.rejected_file = rejects_path if summary.rejected else None
    if not summary.rejected and rejects_path.exists():
        rejects_path.unlink()
    return summary


@contextmanager
def _few_collections() -> Iterator[None]:
    """An import allocates millions of small containers that reference counting frees in time; with the
    default thresholds the cyclic collector rescans every batch's live objects again and again, half the
    cost of validating. Collect rarely while importing (cycles are still collected)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ingest_batch(engine: Engine, ctx: WorkspaceContext, batch: list[Row], summary: ImportSummary,
                  rejects: RejectsWriter) -> None:
    ready = [row for row in batch if row.error is None]
    with transaction(engine) as session:
        results = ingest_events(session, ctx, [row.event for row in ready], max_batch=None, actor="import")
    for row, result in zip(ready, results, strict=True):
        _count(summary, row, result, rejects)
    for row in batch:
        summary.rows += 1
        if row.error is not None:
            summary.rejected += 1
            rejects.write(row.source, row.error[0], row.error[1])
            _sample(summary, row.error[0], row.error[1])


def _count(summary: ImportSummary, row: Row, result: ItemResult, rejects: RejectsWriter) -> None:
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
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield line, Row(line, error=(None, f"line {number} is not valid JSON"))
            continue
        if not isinstance(record, dict):
            yield line, Row(line, error=(None, f"line {number} is not a JSON object"))
            continue
        yield line, record


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

    def __init__(self, path: Path, file_format: str) -> None:
        self.path = path
        self.format = file_format
        self._handle: IO[str] | None = None
        self._csv: Any = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()

    def write(self, source: Any, field_name: str | None, reason: str) -> None:
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

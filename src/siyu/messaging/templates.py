"""Message templates: kinds per channel, sandboxed Jinja2 personalisation, validation at save time.

Variables a template may use:

- `customer.*` — id, name, gender, city, province, birthday, tier, attributes.<any>;
- `coupon.*`, `staff.*`, `params.<any>` — supplied by the sender in the send context
  (a broadcast's context, or `context=` of `enqueue_message`);
- `workspace.name`, `unsubscribe_url`.

An unknown variable (`customer.nickname`) fails when the template is saved; a send whose context
lacks a value the template uses (`coupon.code` without a coupon) fails when it is enqueued. Empty
customer fields render as empty text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

from siyu.messaging.errors import TemplateInvalid, UnknownTemplateVariable

KINDS = ("text", "text_image", "link_card", "miniprogram_card", "material")
CHANNEL_KINDS: dict[str, frozenset[str]] = {
    "sms": frozenset({"text"}),
    "email": frozenset({"text", "text_image", "link_card"}),
}
NAMESPACES: dict[str, frozenset[str] | None] = {
    "customer": frozenset({"id", "name", "gender", "city", "province", "birthday", "tier", "attributes"}),
    "coupon": frozenset({"code", "name", "value", "value_fen", "expires_at", "description"}),
    "staff": frozenset({"name", "title"}),
    "workspace": frozenset({"name"}),
    "params": None,  # any key: values the sender passes
}
SCALARS = frozenset({"unsubscribe_url"})
CALLER_SUPPLIED = ("coupon", "staff", "params")
REQUIRED_PAYLOAD: dict[str, tuple[str, ...]] = {
    "text_image": ("image_url",),
    "link_card": ("link.url", "link.title"),
    "miniprogram_card": ("miniprogram.appid", "miniprogram.page", "miniprogram.title"),
    "material": ("material_id",),
}
SAMPLE: dict[str, Any] = {
    "customer": {"id": 1, "name": "王小丫", "gender": "female", "city": "杭州", "province": "浙江",
                 "birthday": "1990-05-01", "tier": "金卡", "attributes": {}},
    "coupon": {"code": "SAMPLE-CODE", "name": "满199减30", "value": "30元", "value_fen": 3000,
               "expires_at": "2026-12-31", "description": ""},
    "staff": {"name": "小林", "title": "育儿顾问"},
    "workspace": {"name": "品牌"},
    "params": {},
    "unsubscribe_url": "https://example.invalid/u/sample",
}


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_env = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, finalize=_finalize)


@dataclass(frozen=True)
class TemplateSpec:
    """What a template (stored or inline) says, before personalisation."""

    kind: str
    body: str
    subject: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def sources(self) -> Iterator[tuple[str, str]]:
        """(field path, template source) of every string that is personalised."""
        yield "body", self.body
        if self.subject is not None:
            yield "subject", self.subject
        yield from _strings(self.payload, "payload")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")


def _lookup(payload: dict[str, Any], dotted: str) -> Any:
    value: Any = payload
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def validate_spec(channel: str, spec: TemplateSpec) -> list[str]:
    """Check kind, required fields and every variable; returns the variables used, sorted."""
    if spec.kind not in KINDS:
        raise TemplateInvalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    allowed = CHANNEL_KINDS.get(channel)
    if allowed is not None and spec.kind not in allowed:
        raise TemplateInvalid(f"the {channel} channel sends {', '.join(sorted(allowed))} messages, not {spec.kind}",
                              field="kind")
    if channel == "email" and not (spec.subject or "").strip():
        raise TemplateInvalid("an email needs a subject", field="subject")
    for required in REQUIRED_PAYLOAD.get(spec.kind, ()):
        if not _lookup(spec.payload, required):
            raise TemplateInvalid(f"a {spec.kind} message needs payload.{required}", field=f"payload.{required}")
    if spec.kind in ("text", "text_image") and not spec.body.strip():
        raise TemplateInvalid("the message text is empty", field="body")
    used: set[str] = set()
    for path, source in spec.sources():
        used |= _variables_of(source, path)
    _trial_render(spec)
    return sorted(used)


def _variables_of(source: str, path: str) -> set[str]:
    try:
        tree = _env.parse(source)
    except TemplateError as exc:
        raise TemplateInvalid(f"{path}: {exc}", field=path) from exc
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    used: set[str] = set()
    for name in tree.find_all(nodes.Name):
        if name.ctx != "load" or name.name in assigned:
            continue
        if name.name not in NAMESPACES and name.name not in SCALARS:
            raise UnknownTemplateVariable(f"{path}: unknown variable {name.name!r}", field=path)
        used.add(name.name)
    accesses: list[tuple[nodes.Expr, str | None]] = [(n.node, n.attr) for n in tree.find_all(nodes.Getattr)]
    if any(attr is not None and attr.startswith("_") for _, attr in accesses):
        raise TemplateInvalid(f"{path}: names starting with an underscore are not allowed", field=path)
    accesses += [(n.node, n.arg.value if isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str) else None)
                 for n in tree.find_all(nodes.Getitem)]
    for target, attr in accesses:
        if not isinstance(target, nodes.Name) or target.name in assigned or target.name not in NAMESPACES:
            continue
        if attr is None:
            continue
        known = NAMESPACES[target.name]
        if known is not None and attr not in known:
            raise UnknownTemplateVariable(
                f"{path}: unknown variable {target.name}.{attr} (known: "
                f"{', '.join(f'{target.name}.{k}' for k in sorted(known))})", field=path)
        used.add(f"{target.name}.{attr}")
    return used


def _trial_render(spec: TemplateSpec) -> None:
    for path, source in spec.sources():
        try:
            _env.from_string(source).render(SAMPLE)
        except TemplateError as exc:
            raise TemplateInvalid(f"{path}: {exc}", field=path) from exc


def missing_context(variables: list[str], context: dict[str, Any]) -> list[str]:
    """Sender-supplied variables the template uses that the send context does not provide."""
    missing = []
    for variable in variables:
        namespace, _, attr = variable.partition(".")
        if namespace not in CALLER_SUPPLIED:
            continue
        value = context.get(namespace)
        if not isinstance(value, dict) or (attr and value.get(attr) in (None, "")):
            missing.append(variable)
    return missing


Renderer = Callable[[dict[str, Any]], str]


def _substitution(source: str) -> Renderer | None:
    """Most templates are text with `{{ namespace.field }}` holes. Those render by plain lookups,
    many times faster than a Jinja context per message; anything else (tags, filters) is Jinja's."""
    tree = _env.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None if tree.body else (lambda variables: "")
    parts: list[str | tuple[str, ...]] = []
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        path: list[str] = []
        while isinstance(node, nodes.Getattr):
            path.insert(0, node.attr)
            node = node.node
        if not isinstance(node, nodes.Name):
            return None
        parts.append((node.name, *path))

    def render(variables: dict[str, Any]) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value: Any = variables
            for key in part:
                value = value.get(key) if isinstance(value, dict) else None
            out.append("" if value is None else str(value))
        return "".join(out)

    return render


def _jinja(source: str) -> Renderer:
    return _env.from_string(source).render


class CompiledTemplate:
    """A spec compiled once; `render` personalises it for one recipient."""

    def __init__(self, spec: TemplateSpec) -> None:
        self.spec = spec
        self._compiled = [(path.split("."), _substitution(source) or _jinja(source)) for path, source in spec.sources()]
        self._static = _without_strings(spec.payload)

    def render(self, variables: dict[str, Any]) -> dict[str, Any]:
        content: dict[str, Any] = {"kind": self.spec.kind}
        if self._static:
            content.update(copy.deepcopy(self._static))
        for parts, render in self._compiled:
            try:
                text = render(variables)
            except TemplateError as exc:
                raise TemplateInvalid(f"{'.'.join(parts)}: {exc}", field=".".join(parts)) from exc
            if parts[0] == "body":
                content["text"] = text
            elif parts[0] == "subject":
                content["subject"] = text
            else:
                target = content
                for part in parts[1:-1]:  # payload.link.url → content["link"]["url"]
                    target = target.setdefault(part, {})
                target[parts[-1]] = text
        return content


def _without_strings(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's values that are not templates (numbers, lists, flags), kept as they are."""
    kept: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            inner = _without_strings(value)
            if inner:
                kept[key] = inner
        elif not isinstance(value, str):
            kept[key] = value
    return kept


@lru_cache(maxsize=512)
def _compiled(kind: str, body: str, subject: str | None, payload_json: str) -> CompiledTemplate:
    return CompiledTemplate(TemplateSpec(kind, body, subject, orjson.loads(payload_json)))


def compile_spec(spec: TemplateSpec) -> CompiledTemplate:
    """Compiled templates are cached by their source, so a changed template compiles afresh."""
    return _compiled(spec.kind, spec.body, spec.subject,
                     orjson.dumps(spec.payload, option=orjson.OPT_SORT_KEYS).decode())


def customer_variables(row: Any, tier: str | None = None) -> dict[str, Any]:
    """The `customer` namespace from a profile row (id, name, gender, city, province, birthday, attributes)."""
    birthday = row.birthday
    attributes = dict(row.attributes or {})
    return {"id": row.id, "name": row.name, "gender": row.gender, "city": row.city, "province": row.province,
            "birthday": birthday.isoformat() if isinstance(birthday, date) else birthday,
            "tier": tier if tier is not None else attributes.get("tier"), "attributes": attributes}

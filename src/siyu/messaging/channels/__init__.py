"""Channel adapters by name. A channel added later (WeCom, the official account) plugs in either by
calling `register_adapter` or, by convention, as `siyu.channels.<name>.adapter` exposing `ADAPTER`
(a `ChannelAdapter` subclass); nothing here changes for it."""

from __future__ import annotations

import importlib

from siyu.messaging.channels.base import ChannelAdapter
from siyu.messaging.channels.email import SmtpAdapter
from siyu.messaging.channels.sandbox import SandboxAdapter
from siyu.messaging.channels.sms import HttpSmsAdapter
from siyu.messaging.channels.webhook import WebhookAdapter
from siyu.messaging.errors import UnknownChannel

_ADAPTERS: dict[str, type[ChannelAdapter]] = {}


def register_adapter(cls: type[ChannelAdapter]) -> type[ChannelAdapter]:
    _ADAPTERS[cls.name] = cls
    return cls


for _cls in (SandboxAdapter, SmtpAdapter, HttpSmsAdapter, WebhookAdapter):
    register_adapter(_cls)


def adapter_class(name: str) -> type[ChannelAdapter]:
    if name not in _ADAPTERS and name.isidentifier():
        module_name = f"siyu.channels.{name}.adapter"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in (module_name, f"siyu.channels.{name}", "siyu.channels"):
                raise
            module = None
        if module is not None and isinstance(getattr(module, "ADAPTER", None), type):
            register_adapter(module.ADAPTER)
    if name not in _ADAPTERS:
        raise UnknownChannel(f"no channel {name!r} (known: {', '.join(sorted(_ADAPTERS))})", field="channel")
    return _ADAPTERS[name]


def channel_names() -> list[str]:
    return sorted(_ADAPTERS)

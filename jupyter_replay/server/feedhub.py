"""Live feeds in the server extension: one ``FeedHub`` per server, configured with traitlets.

Every session in LIVE mode subscribes through the hub, so sessions on the same feed and symbol share
one upstream connection while keeping their own pause, buffer and clients. A session's symbol picks
the feed: ``"redis:ES"`` is symbol ``ES`` on the ``redis`` feed, a plain ``"ES"`` uses ``default_feed``.

Configuration (``jupyter_server_config.py``)::

    c.ReplayFeeds.redis_url = "redis://127.0.0.1:6379/0"      # registers the "redis" feed
    c.ReplayFeeds.redis_stream = "md:{symbol}"                 # stream key per symbol
    c.ReplayFeeds.websocket_feeds = {"binance": {
        "url": "wss://stream.example/ws/{symbol_lower}@trade",
        "fields": {"price": "float64", "size": "float64"},
        "rename": {"price": "p", "size": "q", "ts": "T"}, "where": {"e": "trade"},
        "time_field": "ts", "time_unit": "ms"}}
    c.ReplayFeeds.default_feed = "synthetic"

Wiring (done by ``ReplayExtension``): ``feeds = ReplayFeeds(parent=app)``, ``hub = feeds.build_hub()``,
``settings[HUB_SETTING] = hub``, ``settings[FEEDS_SETTING] = feeds``,
``Session(..., live_factory=hub.live_factory(feeds.default_feed))``, ``await hub.aclose()`` on stop,
and ``GET {base_url}replay/api/feeds`` served by ``handlers.FeedsHandler``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from traitlets import Dict, Integer, Unicode, import_item, validate
from traitlets.config import LoggingConfigurable

from ..exceptions import InvalidValueError, brief
from ..feeds.hub import FeedHub, redis_factory, ws_factory
from ..sources.base import LiveSource

__all__ = ["ReplayFeeds", "json_parser", "HUB_SETTING", "FEEDS_SETTING"]

HUB_SETTING = "replay_feed_hub"
FEEDS_SETTING = "replay_feeds"


class ReplayFeeds(LoggingConfigurable):
    """Which live feeds the server offers (``c.ReplayFeeds.*``)."""

    default_feed = Unicode(
        "synthetic", help="Feed used for symbols without a 'feed:' prefix (must be registered)."
    ).tag(config=True)

    queue_size = Integer(
        256, help="Chunks queued per subscribing session before its oldest are dropped (a slow session)."
    ).tag(config=True)

    redis_url = Unicode(
        "", help="redis:// URL of the Redis holding live streams; registers the 'redis' feed when set."
    ).tag(config=True)

    redis_stream = Unicode("{symbol}", help="Stream key of a symbol, with '{symbol}' replaced.").tag(config=True)

    redis_fields = Dict(
        {"price": "float64", "size": "int64", "side": "int8"},
        help="Value fields of the streams and their dtypes (known before the first entry arrives).",
    ).tag(config=True)

    websocket_feeds = Dict(
        {},
        help=(
            "Exchange-style JSON WebSocket feeds: {name: {url, fields, rename, where, records, time_field, "
            "time_unit, subscribe_message, batch_window, backoff_max}}. '{symbol}'/'{symbol_lower}' in url "
            "and in string values of subscribe_message are replaced."
        ),
    ).tag(config=True)

    factories = Dict(
        {},
        help="Extra feeds: {name: 'package.module:callable'}; callable(symbol) returns a LiveSource.",
    ).tag(config=True)

    @validate("queue_size")
    def _check_queue(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise InvalidValueError(f"queue_size must be >= 1, got {brief(proposal['value'])}")
        return proposal["value"]

    def build_hub(self) -> FeedHub:
        """A ``FeedHub`` with "synthetic" plus the configured feeds."""
        hub = FeedHub(queue_size=self.queue_size)
        if self.redis_url:
            factory = redis_factory(self.redis_url, stream=self.redis_stream, fields=dict(self.redis_fields))
            hub.register("redis", factory)
        for name, spec in self.websocket_feeds.items():
            hub.register(name, _ws_feed(name, spec), replace=True)
        for name, target in self.factories.items():
            hub.register(name, _imported(name, target), replace=True)
        if self.default_feed not in hub.feeds:
            raise InvalidValueError(f"default_feed {self.default_feed!r} is not a registered feed: {hub.feeds}")
        return hub


def _imported(name: str, target: str) -> Callable[[str], LiveSource]:
    try:
        return import_item(target.replace(":", "."))
    except Exception as exc:
        raise InvalidValueError(f"feed {name!r}: cannot import {target!r}: {exc}") from exc


def json_parser(
    rename: Mapping[str, str] | None = None, where: Mapping[str, Any] | None = None, records: str | None = None
) -> Callable[[Any], Any]:
    """A ``parse`` for ``WebSocketJSONSource`` from declarative settings.

    ``records``: key holding the record(s) in each message (e.g. ``"data"``); ``where``: keys that must
    have these values (others are skipped: heartbeats, acks); ``rename``: ``{column: message key}``.
    """
    rename = dict(rename or {})
    where = dict(where or {})

    def parse(message: Any) -> Any:
        body = message.get(records) if (records and isinstance(message, dict)) else message
        items = body if isinstance(body, list) else [body]
        out = []
        for item in items:
            if not isinstance(item, dict) or any(item.get(k) != v for k, v in where.items()):
                continue
            if rename:
                item = {**item, **{col: item.get(key) for col, key in rename.items()}}
            out.append(item)
        return out

    return parse


def _ws_feed(name: str, spec: Mapping[str, Any]) -> Callable[[str], LiveSource]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("url"), str):
        raise InvalidValueError(f"websocket feed {name!r} needs a 'url'")
    spec = dict(spec)
    url = spec.pop("url")
    parse = json_parser(spec.pop("rename", None), spec.pop("where", None), spec.pop("records", None))
    template = spec.pop("subscribe_message", None)
    allowed = {"fields", "time_field", "time_unit", "batch_window", "max_batch_rows", "backoff_initial",
               "backoff_max", "max_retries", "gap_column"}
    unknown = set(spec) - allowed
    if unknown:
        raise InvalidValueError(f"websocket feed {name!r}: unknown settings {sorted(unknown)}")
    subscribe = (lambda symbol: _fill(template, symbol)) if template is not None else None
    return ws_factory(url, parse=parse, subscribe_message=subscribe, **spec)


def _fill(value: Any, symbol: str) -> Any:
    if isinstance(value, str):
        return value.replace("{symbol}", symbol).replace("{symbol_lower}", symbol.lower())
    if isinstance(value, list):
        return [_fill(v, symbol) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, symbol) for k, v in value.items()}
    return value

"""Code that runs where a host runs its Python: event records, the scenario callbacks, and ``WidgetDriver``.

The engine and threaded hosts use it in the test process; the attached host imports it inside the real
kernel (``WidgetDriver`` drives a ``Replay`` there and answers in JSON). Keep it free of pytest.
"""

from __future__ import annotations

import base64
import json
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["CALLBACKS", "ON_RESET", "WidgetDriver", "add_callback", "error_record", "event_record", "make_callback",
           "mark_records"]


def event_record(event: Any) -> dict[str, Any]:
    """A JSON-able record of a session event (``Batch``, ``ResetEvent``, ``StateEvent``)."""
    kind = getattr(event, "kind", type(event).__name__)
    rec: dict[str, Any] = {"kind": kind, "seq": int(event.seq)}
    if kind == "batch":
        rec.update(first_row=int(event.first_row), n=len(event), mode=getattr(event.mode, "value", event.mode),
                   ts=[int(t) for t in event.ts], columns=list(event.columns),
                   position=getattr(event, "position", None), warmup=bool(getattr(event, "warmup", False)))
    elif kind == "reset":
        rec.update(reason=event.reason, mode=getattr(event.mode, "value", event.mode),
                   position=getattr(event, "position", None))
    elif kind == "state":
        rec.update(state=event.status.get("state"), mode=event.status.get("mode"))
    elif kind == "mark":
        rec.update(time_ns=int(event.time_ns), y=event.y, text=event.text, side=event.side)
    return rec


def mark_records(marks: Any) -> list[dict[str, Any]]:
    """``r.marks`` (a DataFrame: time, y, text, side) as JSON-able records ``{time_ns, y, text, side}``."""
    import math

    out = []
    for row in marks.to_dict("records"):
        y = row["y"]
        out.append({"time_ns": int(row["time"].value), "y": None if y is None or math.isnan(y) else float(y),
                    "text": row["text"], "side": row["side"]})
    return out


def error_record(exc: BaseException) -> dict[str, Any]:
    return {"types": [c.__name__ for c in type(exc).__mro__], "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))[-2000:]}


# ----------------------------------------------------------------------------- scenario callbacks


def _rows(store: dict[str, Any], batch: Any) -> None:
    store["batches"] = store.get("batches", 0) + 1
    store["rows"] = store.get("rows", 0) + len(batch)
    if store.get("acted"):
        store["rows_after_action"] = store.get("rows_after_action", 0) + len(batch)
        store.setdefault("first_rows_after_action", []).append(int(batch.first_row))


def _count_symbols(target: Any, store: dict[str, Any], column: str = "symbol") -> Callable[..., None]:
    def count_symbols(batch: Any, clock: Any) -> None:
        counts = store.setdefault("symbols", {})
        for sym in batch.columns[column]:
            counts[str(sym)] = counts.get(str(sym), 0) + 1
        _rows(store, batch)

    return count_symbols


def _raise(target: Any, store: dict[str, Any]) -> Callable[..., None]:
    def raising(batch: Any, clock: Any) -> None:
        store["calls"] = store.get("calls", 0) + 1
        raise RuntimeError("conformance: this callback always fails")

    return raising


def _act_once(action: str) -> Callable[..., Callable[..., None]]:
    def factory(target: Any, store: dict[str, Any], at_rows: int = 1, work_s: float = 0.0,
                **kwargs: Any) -> Callable[..., None]:
        """``work_s``: the callback first computes for that long (user code is not instant)."""

        def act(batch: Any, clock: Any) -> None:
            _rows(store, batch)
            if store.get("acted") or store["rows"] < at_rows:
                return
            if work_s:
                end = time.monotonic() + work_s
                while time.monotonic() < end:  # busy, like user code computing
                    pass
            store["acted"] = True
            store["action_after_rows"] = store["rows"]
            try:
                getattr(target, action)(**kwargs)
            except Exception as exc:  # recorded: the scenario asserts there was none
                store["action_error"] = f"{type(exc).__name__}: {exc}"

        return act

    return factory


def _record(target: Any, store: dict[str, Any], work_s: float = 0.0) -> Callable[..., None]:
    def record(batch: Any, clock: Any) -> None:
        end = time.monotonic() + work_s
        while time.monotonic() < end:  # busy, like user code computing
            pass
        _rows(store, batch)
        store.setdefault("positions", []).append(getattr(batch, "position", None))

    return record


def _return_marks(target: Any, store: dict[str, Any]) -> Callable[..., Any]:
    """Returns marks in every form a callback may (steps of one row: batch i is source row i)."""

    def return_marks(batch: Any, clock: Any) -> Any:
        import pandas as pd

        _rows(store, batch)
        i = int(batch.first_row)
        if i == 0:
            return {"side": "buy", "text": "in"}  # no time: the batch's last row
        if i == 1:
            return [{"side": "sell"}, {"text": "note", "y": 101.5, "time": int(batch.ts[0])}]
        if i == 2:
            return pd.DataFrame({"side": ["buy"], "text": ["frame"]})
        if i == 3:
            return {"side": "sideways"}  # invalid: counted as this callback's failure
        return None

    return return_marks


def _record_resets(target: Any, store: dict[str, Any]) -> Callable[..., None]:
    def record_resets(reason: str, position: Any) -> None:
        store.setdefault("resets", []).append([reason, position])

    return record_resets


#: name -> factory(target, store, **params): target is what the user holds (Session, ThreadedSession, Replay)
CALLBACKS: dict[str, Callable[..., Callable[..., None]]] = {
    "count_symbols": _count_symbols,
    "raise": _raise,
    "stop": _act_once("stop"),
    "pause": _act_once("pause"),
    "seek": _act_once("seek"),
    "record": _record,
    "return_marks": _return_marks,
    "record_resets": _record_resets,
}
#: callback kinds that are ``on_reset(reason, position)`` callbacks (the others are ``on_batch``)
ON_RESET = frozenset({"record_resets"})


def make_callback(kind: str, target: Any, store: dict[str, Any], **params: Any) -> Callable[..., None]:
    return CALLBACKS[kind](target, store, **params)


def add_callback(target: Any, kind: str, store: dict[str, Any], **params: Any) -> None:
    """Register a scenario callback on what the user holds (``on_reset`` for ``ON_RESET`` kinds)."""
    fn = make_callback(kind, target, store, **params)
    (target.on_reset if kind in ON_RESET else target.on_batch)(fn)


# ----------------------------------------------------------------------------- widget driver (kernel side)


class WidgetDriver:
    """Drives one ``Replay`` widget through its public Python API; every method answers JSON text.

    ``call(name, args_json)`` returns ``{"ok": result}`` or ``{"error": error_record}``.
    """

    def __init__(self) -> None:
        self.r: Any = None
        self.events: list[dict[str, Any]] = []
        self.store: dict[str, Any] = {}
        self.lock = threading.Lock()

    def call(self, name: str, args_json: str = "{}") -> str:
        try:
            result = getattr(self, "do_" + name)(**json.loads(args_json))
            return json.dumps({"ok": result})
        except Exception as exc:
            return json.dumps({"error": error_record(exc)})

    def _on_event(self, event: Any) -> None:
        with self.lock:
            self.events.append(event_record(event))

    def do_load(self, dataset: str, attach: dict[str, Any] | None = None, input: str = "pandas") -> dict[str, Any]:
        """``input``: the library the data comes from (``golden.input_data``), built here, where the widget runs."""
        import golden

        from jupyter_replay.widgets import replay

        self.do_close()
        self.events, self.store = [], {}
        self.r = replay(golden.input_data(input, dataset), time=golden.TIME[dataset])
        if attach is not None:
            self.r._attach({"type": "attach", **attach})
            if self.r.attached != attach["session"]:
                raise RuntimeError(f"the widget did not attach (attached={self.r.attached!r})")
        self.r.session.subscribe(self._on_event)
        return {"attached": self.r.attached}

    def do_control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """An action through the widget's Python API (what a notebook user writes)."""
        r = self.r
        if action in ("play", "pause", "stop") and not args:
            getattr(r, action)()
        elif action == "step" and set(args) <= {"n", "duration"}:
            r.step(args.get("n", 1) if "duration" not in args else None, duration=args.get("duration"))
        elif action == "seek" and set(args) in ({"timestamp"}, {"fraction"}):
            r.seek(args.get("timestamp"), fraction=args.get("fraction"))
        elif action in ("speed", "loop") and set(args) == {action}:
            setattr(r, action, args[action])
        elif action == "mark" and set(args) <= {"time", "y", "text", "side"}:
            r.mark(**args)
        elif action == "mode" and set(args) <= {"mode", "symbol"} and "mode" in args:
            if "symbol" in args:
                r.symbol = args["symbol"]
            r.mode = args["mode"]
        else:  # anything else: the widget's one generic entry, by name (what its buttons send too)
            r.control(action, dict(args))
        return dict(r.status)

    def do_status(self) -> dict[str, Any]:
        return dict(self.r.status)

    def do_session_status(self) -> dict[str, Any]:
        return dict(self.r.session.status())

    def do_wait(self, states: list[str], timeout: float) -> str:
        return self.r.wait(states, timeout=timeout)

    def do_events(self, since: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events[since:])

    def do_frame(self) -> str:
        return base64.b64encode(pickle.dumps(self.r.buffer)).decode()

    def do_add_callback(self, kind: str, params: dict[str, Any]) -> None:
        add_callback(self.r, kind, self.store, **params)

    def do_marks(self) -> list[dict[str, Any]]:
        return mark_records(self.r.marks)

    def do_store(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.store, default=str))

    def do_close(self) -> None:
        if self.r is not None:
            self.r.close()
            self.r = None

"""The per-model ESM is a small loader: it asks the kernel for the widget bundle once per page and bundle
version, then renders with it (js loader under node against the real kernel side of the exchange)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_frontend import run_node
from widget_helpers import RecordingReplay, trades

from jupyter_replay.widgets.replay import STATIC, bundle_bytes


@pytest.fixture(scope="module")
def node(require_binary: Callable[..., str]) -> str:
    return require_binary("node", "install Debian's nodejs; `./dev setup` does")


def test_kernel_answers_need_esm_with_the_bundle_without_starting_a_view() -> None:
    r = RecordingReplay(trades(10))
    try:
        r.from_browser({"type": "need_esm"})
        (content, buffers), = r.messages("esm")
        assert buffers == [bundle_bytes()] and len(r.bundle) == 16
        assert not r._has_view  # the loader is not a view: no rows are sent for it
    finally:
        r.close()


def test_loader_fetches_the_bundle_once_and_renders_with_it(node: str, tmp_path: Path) -> None:
    fake_bundle = 'export default { render({ model, el }) { el.rendered = (el.rendered || 0) + 1; return "ok"; } };'
    out = run_node(node, tmp_path, """
const code = Buffer.from(%s, "base64");
// node cannot import blob: URLs (a browser can): the same text as a data: URL
globalThis.Blob = class { constructor(parts) { this.text = parts.join(""); } };
URL.createObjectURL = (b) => "data:text/javascript," + encodeURIComponent(b.text);
URL.revokeObjectURL = () => {};
const sent = [];
function model(bundle) {
  const handlers = [];
  return {
    get: (k) => (k === "bundle" ? bundle : null),
    on: (ev, fn) => handlers.push(fn),
    off: (ev, fn) => { const i = handlers.indexOf(fn); if (i >= 0) handlers.splice(i, 1); },
    send: (msg) => { sent.push([bundle, msg.type]);
      setTimeout(() => [...handlers].forEach((h) => h({ type: "esm" }, [new DataView(code.buffer, code.byteOffset, code.length)])), 0); },
  };
}
const loader = (await import("%s")).default;
const els = [{}, {}, {}];
const results = await Promise.all([loader.render({ model: model("v1"), el: els[0] }),
                                   loader.render({ model: model("v1"), el: els[1] }),
                                   loader.render({ model: model("v2"), el: els[2] })]);
console.log(JSON.stringify({ results, sent, rendered: els.map((e) => e.rendered) }));
""" % (json.dumps(base64.b64encode(fake_bundle.encode()).decode()), (STATIC / "loader.js").as_uri()))
    assert out["results"] == ["ok", "ok", "ok"] and out["rendered"] == [1, 1, 1]
    assert out["sent"] == [["v1", "need_esm"], ["v2", "need_esm"]]  # once per bundle version, not per view

from __future__ import annotations

from agent.bridge import ErrorCode
from agent.orders import Hint
from rp import webmessages


def test_the_js_table_is_generated_from_the_current_catalogue() -> None:
    source = webmessages.JS_FILE.read_text("utf-8")
    assert webmessages.rendered_js(source) == source, "run: python -m rp.webmessages --write"


def test_every_hint_and_error_has_a_message() -> None:
    assert set(webmessages.HINTS) == {h.value for h in Hint}
    assert set(webmessages.ERRORS) == {e.value for e in ErrorCode} | {"unreachable"}
    assert all(set(v) == {"auth", "sign"} for v in webmessages.HINTS.values())


def test_openapi_document_is_current() -> None:
    from agent.bridge import openapi

    assert openapi.OUTPUT.read_text("utf-8") == openapi.rendered(), (
        "run: python -m agent.bridge.openapi --write"
    )
    doc = openapi.document()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/info", "/v1/auth", "/v1/sign", "/v1/collect", "/v1/cancel"}

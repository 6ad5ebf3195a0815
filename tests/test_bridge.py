"""The bridge through its real HTTP interface: every applicable line of
BRIDGE-SECURITY.md, the order flow, and the error vocabulary."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.bridge import OriginPolicy
from agent.credentials import CredentialStore
from agent.orders import REPLACE_AFTER, Phase
from eidcore.messages import MessageCode
from tests.bridge_kit import ORIGIN, Bridge, b64, new_nonce, running_bridge
from tests.conftest import ANNA, BERTIL, FAST_KDF, PASSWORD, MakeToken


def _no_side_effect(b: Bridge) -> None:
    assert b.ui.requests == [] and b.ui.told == []
    assert len(b.service) == 0


# -- 2. Host check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "localhost.evil.example:{port}",
        "",
        "localhost.:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.0.0.2:{port}",
        "0.0.0.0:{port}",
        "LOCALHOST.:{port}",
    ],
)
async def test_wrong_host_is_421_before_anything(bridge: Bridge, host: str) -> None:
    h = host.format(port=bridge.port)
    status, body = await bridge.post("/v1/auth", {"nonce": new_nonce()}, headers={"Host": h})
    assert (status, body["errorCode"]) == (421, "forbiddenHost")
    async with bridge.client.get("/v1/info", headers={"Host": h}) as resp:
        assert resp.status == 421
    _no_side_effect(bridge)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LocalHost:{port}"]
)
async def test_loopback_hosts_are_accepted(bridge: Bridge, host: str) -> None:
    async with bridge.client.get(
        "/v1/info", headers={"Host": host.format(port=bridge.port)}
    ) as resp:
        assert resp.status == 200


# -- 3. Origin gate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "null",
        "file://",
        "chrome-extension://abcdefghijklmnop",
        "http://bank.example",
        "https://bank.example/path",
        "https://user@bank.example",
        "https://" + "a" * 250 + ".se",
        "https://bank.example.",
        "ftp://bank.example",
        "https://[::1",
        "https://bank.example:99999",
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "https://BANK.example",
        # forms no browser serialises: a doubled or missing port separator, numeric hosts,
        # a bare or default or zero-padded port, an uncompressed IPv6 address
        "https://bank.example::443",
        "https://[::1]443",
        "https://[::1]:",
        "https://:443",
        "https://2130706433",
        "https://127.1",
        "https://0x7f.0.0.1",
        "https://bank.123",
        "https://bank.example:",
        "https://bank.example:443",
        "https://bank.example:08443",
        "https://[0:0:0:0:0:0:0:1]",
        "https://bank.example:8443/",
        "https://bank.example#x",
    ],
)
async def test_bad_origins_get_403_and_no_dialog(bridge: Bridge, origin: str | None) -> None:
    for path in ("/v1/auth", "/v1/sign"):
        status, body = await bridge.post(
            path, {"nonce": new_nonce(), "userVisibleData": b64("x")}, origin=origin
        )
        assert (status, body["errorCode"]) == (403, "forbiddenOrigin"), origin
    await asyncio.sleep(0.05)
    _no_side_effect(bridge)


@pytest.mark.parametrize(
    "origin",
    [
        "https://bank.example:8443",
        "https://192.0.2.1",
        "https://[2001:db8::1]:8443",
        "https://xn--bnk-qla.se",
        "https://a.b.bank.example",
    ],
)
async def test_origins_as_browsers_send_them_are_shown_and_signed(
    bridge: Bridge, origin: str
) -> None:
    from agent.ui.view import origin_view

    ref = await bridge.start(origin=origin)
    await bridge.wait_for(ref, "userSign", origin=origin)
    assert bridge.ui.requests[0].origin == origin
    assert origin_view(origin).registrable  # the dialog's view of it never raises


async def test_localhost_origins_only_behind_the_development_setting(
    tmp_path: Path, make_token: MakeToken
) -> None:
    store = CredentialStore(tmp_path / "d", kdf=FAST_KDF)
    store.add(make_token())
    policy = OriginPolicy.of(allow_http_localhost=True)
    async with running_bridge(tmp_path / "d", store=store, policy=policy) as b:
        for origin in ("http://localhost:8080", "http://127.0.0.1:9000", "http://[::1]"):
            status, body = await b.post("/v1/auth", {"nonce": new_nonce()}, origin=origin)
            assert status == 201, body
            await b.post("/v1/cancel", {"orderRef": body["orderRef"]}, origin=origin)
        status, _ = await b.post(
            "/v1/auth", {"nonce": new_nonce()}, origin="http://intranet.example"
        )
        assert status == 403


async def test_allow_and_block_lists(tmp_path: Path, make_token: MakeToken) -> None:
    store = CredentialStore(tmp_path / "d", kdf=FAST_KDF)
    store.add(make_token())
    policy = OriginPolicy.of(allow=["bank.example"], block=["evil.bank.example"])
    async with running_bridge(tmp_path / "d", store=store, policy=policy) as b:
        for origin, expected in [
            ("https://bank.example", 201),
            ("https://www.bank.example", 201),
            ("https://evil.bank.example", 403),
            ("https://x.evil.bank.example", 403),
            ("https://bank.example.evil", 403),
            ("https://other.example", 403),
        ]:
            status, body = await b.post("/v1/auth", {"nonce": new_nonce()}, origin=origin)
            assert status == expected, (origin, body)
            if status == 201:
                await b.post("/v1/cancel", {"orderRef": body["orderRef"]}, origin=origin)


# -- 4. No simple requests ---------------------------------------------------------------


async def test_simple_requests_start_nothing(bridge: Bridge) -> None:
    body = json.dumps({"nonce": new_nonce()})
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        status, reply = await bridge.post("/v1/auth", body, headers={"Content-Type": content_type})
        assert status == 415 and reply["errorCode"] == "invalidParameters"
    async with bridge.client.post(
        "/v1/auth",
        data=body,
        headers={"Origin": ORIGIN, "Content-Type": "application/json"},
    ) as resp:  # no custom header
        assert resp.status == 400
    async with bridge.client.get("/v1/auth", headers={"Origin": ORIGIN}) as resp:
        assert resp.status == 405
    await asyncio.sleep(0.05)
    _no_side_effect(bridge)


# -- 5. CORS and preflights --------------------------------------------------------------


async def test_preflight_headers_are_exact(bridge: Bridge) -> None:
    async with bridge.client.options(
        "/v1/auth",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-eid-agent",
            "Access-Control-Request-Private-Network": "true",
        },
    ) as resp:
        assert resp.status == 204
        h = resp.headers
        assert h["Access-Control-Allow-Origin"] == ORIGIN
        assert h["Vary"] == "Origin"
        assert h["Access-Control-Allow-Private-Network"] == "true"
        assert h["Access-Control-Allow-Methods"] == "GET, POST"
        assert h["Access-Control-Allow-Headers"] == "Content-Type, X-Eid-Agent"
    async with bridge.client.options("/v1/auth", headers={"Origin": ORIGIN}) as resp:
        assert "Access-Control-Allow-Private-Network" not in resp.headers


@pytest.mark.parametrize("origin", ["https://evil.example.", "null", "http://bank.example"])
async def test_preflight_for_bad_origin_has_no_cors_headers(bridge: Bridge, origin: str) -> None:
    async with bridge.client.options("/v1/auth", headers={"Origin": origin}) as resp:
        assert resp.status == 403
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_responses_echo_the_origin_never_a_wildcard(bridge: Bridge) -> None:
    async with bridge.client.get("/v1/info", headers={"Origin": ORIGIN}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    async with bridge.client.get("/v1/info", headers={"Origin": "null"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with bridge.client.get("/v1/info") as resp:
        assert "*" not in resp.headers.get("Access-Control-Allow-Origin", "")


# -- 6. One active order, rate limits, floods ---------------------------------------------


async def test_second_start_is_already_in_progress(bridge: Bridge) -> None:
    ref = await bridge.start()
    status, body = await bridge.post(
        "/v1/auth", {"nonce": new_nonce()}, origin="https://other.example"
    )
    assert (status, body["errorCode"]) == (409, "alreadyInProgress")
    await bridge.post("/v1/cancel", {"orderRef": ref})


async def test_a_new_order_from_the_same_site_replaces_its_own(bridge: Bridge) -> None:
    """A tab closed mid-order must not block its site for the order's whole life."""
    old = await bridge.start()
    await bridge.wait_for(old, "userSign")
    status, body = await bridge.post("/v1/auth", {"nonce": new_nonce()})
    assert (status, body["errorCode"]) == (409, "alreadyInProgress")  # not in a flood
    await asyncio.sleep(REPLACE_AFTER.total_seconds())
    new = await bridge.start()  # the page was reloaded: same origin
    assert (await bridge.collect(old))["hintCode"] == "cancelled"
    assert old in bridge.ui.closed  # its dialog closed
    status, body = await bridge.post(
        "/v1/auth", {"nonce": new_nonce()}, origin="https://other.example"
    )
    assert (status, body["errorCode"]) == (409, "alreadyInProgress")  # others still wait
    await bridge.wait_for(new, "userSign")
    await bridge.ui.secrets.put(PASSWORD)
    assert (await bridge.wait_for(new, "complete"))["status"] == "complete"


async def test_flood_opens_one_dialog_and_is_rate_limited(bridge: Bridge) -> None:
    statuses = []
    for i in range(100):
        origin = f"https://site{i % 10}.example"
        status, _ = await bridge.post("/v1/auth", {"nonce": new_nonce()}, origin=origin)
        statuses.append(status)
    await asyncio.sleep(0.1)
    assert statuses.count(201) == 1
    assert 429 in statuses and set(statuses) <= {201, 409, 429}
    assert len(bridge.ui.requests) == 1  # one dialog, whatever the flood
    assert len(bridge.service) == 1


# -- 7. Named limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("auth", {}),
        ("auth", {"nonce": b64(b"x" * 31)}),
        ("auth", {"nonce": b64(b"x" * 97)}),
        ("auth", {"nonce": "not base64!!"}),
        ("auth", {"nonce": 123}),
        ("auth", {"nonce": "NONCE", "extra": 1}),
        ("auth", {"nonce": "NONCE", "personalNumber": "19811218-9876"}),
        ("auth", {"nonce": "NONCE", "personalNumber": "8112189876"}),
        ("auth", {"nonce": "NONCE", "personalNumber": 198112189876}),
        ("auth", {"nonce": "NONCE", "tokenKinds": ["phone"]}),
        ("auth", {"nonce": "NONCE", "tokenKinds": []}),
        ("auth", {"nonce": "NONCE", "tokenKinds": ["file", "file"]}),
        ("auth", {"nonce": "NONCE", "tokenKinds": [["file"]]}),
        ("auth", {"nonce": "NONCE", "userNonVisibleData": b64("x")}),
        ("sign", {"nonce": "NONCE"}),
        ("sign", {"nonce": "NONCE", "userVisibleData": "***"}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64(b"\xff\xfe")}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64("   ")}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64("a\x1b[2Jb")}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64("x" * 30_001)}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64("x"), "userVisibleDataFormat": "html"}),
        ("sign", {"nonce": "NONCE", "userVisibleData": b64("x"), "userVisibleDataFormat": {}}),
        (
            "sign",
            {
                "nonce": "NONCE",
                "userVisibleData": b64("x"),
                "userNonVisibleData": b64(b"x" * 150_001),
            },
        ),
    ],
)
async def test_invalid_parameters_are_400(bridge: Bridge, kind: str, body: dict) -> None:  # type: ignore[type-arg]
    body = {k: (new_nonce() if v == "NONCE" else v) for k, v in body.items()}
    status, reply = await bridge.post(f"/v1/{kind}", body)
    assert (status, reply["errorCode"]) == (400, "invalidParameters"), reply
    assert "Traceback" not in reply["details"]
    _no_side_effect(bridge)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b"\xff",
        b'{"nonce": ' * 50 + b"1" + b"}" * 50,
        b"[" * 100_000,
        b'{"a": {"b": {"c": {"d": 1}}}}',
    ],
)
async def test_malformed_bodies_are_400_never_500(bridge: Bridge, raw: bytes) -> None:
    status, reply = await bridge.post("/v1/auth", raw)
    assert (status, reply["errorCode"]) == (400, "invalidParameters")


async def test_too_large_is_413(bridge: Bridge) -> None:
    status, reply = await bridge.post("/v1/sign", b'{"x": "' + b"a" * 300_000 + b'"}')
    assert (status, reply["errorCode"]) == (413, "requestTooLarge")


async def test_unknown_paths_and_orders(bridge: Bridge) -> None:
    status, reply = await bridge.post("/v1/nothing", {})
    assert (status, reply["errorCode"]) == (404, "notFound")
    status, reply = await bridge.post("/v1/collect", {"orderRef": "nope"})
    assert (status, reply["errorCode"]) == (404, "notFound")
    status, reply = await bridge.post("/v1/collect", {"orderRef": "x" * 65})
    assert status == 400


# -- 8. No information without consent -----------------------------------------------------


async def test_info_tells_nothing_about_the_person(bridge: Bridge) -> None:
    async with bridge.client.get("/v1/info", headers={"Origin": ORIGIN}) as resp:
        info = await resp.json()
    assert set(info) == {"version", "apiVersion", "updateRequired", "updateState"}
    assert "198112189876" not in json.dumps(info) and "Anna" not in json.dumps(info)


# -- the order flow ----------------------------------------------------------------------


async def test_identification_completes(bridge: Bridge) -> None:
    ref = await bridge.start()
    await bridge.wait_for(ref, "userSign")
    await bridge.ui.secrets.put(PASSWORD)
    body = await bridge.wait_for(ref, "complete")
    data = body["completionData"]
    assert data["user"] == {
        "personalNumber": "198112189876",
        "name": "Anna Andersson",
        "givenName": "Anna",
        "surname": "Andersson",
    }
    assert data["token"] == {"kind": "file"} and data["algorithm"] == "ES256"
    signed = json.loads(base64.b64decode(data["signedData"]))
    assert signed["type"] == "auth" and signed["origin"] == ORIGIN
    assert signed["orderRef"] == ref
    assert bridge.ui.requests[0].origin == ORIGIN  # the origin shown is the one signed
    assert bridge.ui.closed == [ref]
    assert len(data["certificateChain"]) == 2  # leaf and issuing CA; never the root


async def test_no_server_header(bridge: Bridge) -> None:
    async with bridge.client.get("/v1/info") as resp:
        assert "Server" not in resp.headers


async def test_wrong_password_stays_in_user_sign_with_tries_left(bridge: Bridge) -> None:
    ref = await bridge.start()
    await bridge.ui.secrets.put("not-the-right-one")
    await bridge.wait_for(ref, "userSign")
    for _ in range(50):
        if len(bridge.ui.problems) == 2:
            break
        await asyncio.sleep(0.02)
    problem = bridge.ui.problems[1]
    assert problem is not None and problem.code is MessageCode.WRONG_PASSWORD
    assert problem.params == {"tries_left": 4}
    assert (await bridge.collect(ref))["hintCode"] == "userSign"
    await bridge.ui.secrets.put(PASSWORD)
    await bridge.wait_for(ref, "complete")


async def test_five_wrong_passwords_end_in_certificate_err(bridge: Bridge) -> None:
    ref = await bridge.start()
    for _ in range(5):
        await bridge.ui.secrets.put("not-the-right-one")
    body = await bridge.wait_for(ref, "failed")
    assert body["hintCode"] == "certificateErr"
    assert [n.code for n in bridge.ui.told] == [MessageCode.FILE_LOCKED]
    ref2 = await bridge.start()
    assert (await bridge.wait_for(ref2, "failed"))["hintCode"] == "certificateErr"
    assert [n.code for n in bridge.ui.told] == [
        MessageCode.FILE_LOCKED,
        MessageCode.NO_VALID_BANKID,
    ]


async def test_person_cancels(bridge: Bridge) -> None:
    ref = await bridge.start()
    await bridge.ui.secrets.put(None)
    assert (await bridge.wait_for(ref, "failed"))["hintCode"] == "userCancel"


async def test_page_cancels_and_the_dialog_closes(bridge: Bridge) -> None:
    ref = await bridge.start()
    await bridge.wait_for(ref, "userSign")
    status, _ = await bridge.post("/v1/cancel", {"orderRef": ref})
    assert status == 200
    assert (await bridge.collect(ref))["hintCode"] == "cancelled"
    await asyncio.sleep(0.05)
    assert bridge.ui.closed == [ref]
    # a password typed now reaches nothing
    await bridge.ui.secrets.put(PASSWORD)
    await asyncio.sleep(0.1)
    assert (await bridge.collect(ref))["status"] == "failed"
    status, _ = await bridge.post("/v1/cancel", {"orderRef": ref})
    assert status == 200  # cancelling a finished order is a no-op


async def test_another_origin_cannot_collect_or_cancel(bridge: Bridge) -> None:
    ref = await bridge.start()
    for path in ("/v1/collect", "/v1/cancel"):
        status, reply = await bridge.post(path, {"orderRef": ref}, origin="https://evil.example")
        assert (status, reply["errorCode"]) == (404, "notFound")
    assert (await bridge.collect(ref))["status"] == "pending"


async def test_order_expires(tmp_path: Path, make_token: MakeToken) -> None:
    store = CredentialStore(tmp_path / "d", kdf=FAST_KDF)
    store.add(make_token())
    async with running_bridge(tmp_path / "d", store=store, ttl=dt.timedelta(seconds=1)) as b:
        ref = await b.start()
        body = await b.wait_for(ref, "failed", timeout=5)
        assert body["hintCode"] == "expiredTransaction"
        assert b.ui.closed == [ref]
        assert b.ui.told[-1].code is MessageCode.TIMED_OUT


async def test_no_credential_is_certificate_err(tmp_path: Path) -> None:
    async with running_bridge(tmp_path / "empty") as b:
        ref = await b.start()
        assert (await b.wait_for(ref, "failed"))["hintCode"] == "certificateErr"
        assert b.ui.told[-1].code is MessageCode.NO_BANKID_FOUND
        assert b.ui.requests == []  # no dialog asking for a password


async def test_filters_pick_the_person(tmp_path: Path, make_token: MakeToken) -> None:
    store = CredentialStore(tmp_path / "d", kdf=FAST_KDF)
    store.add(make_token(ANNA))
    store.add(make_token(BERTIL))
    async with running_bridge(tmp_path / "d", store=store) as b:
        ref = await b.start(personalNumber=str(BERTIL.personal_number))
        await b.wait_for(ref, "userSign")
        assert [c.owner.given_name for c in b.ui.requests[0].choices] == ["Bertil"]
        await b.post("/v1/cancel", {"orderRef": ref})
        ref = await b.start(tokenKinds=["card"])
        assert (await b.wait_for(ref, "failed"))["hintCode"] == "certificateErr"
        assert b.ui.told[-1].code is MessageCode.NONE_USABLE_FOR_IDENTIFICATION


async def test_sign_shows_the_text_verbatim(bridge: Bridge) -> None:
    text = "Jag godkänner överföringen av 1 000 kr.\n\nÅÄÖ – “citat” 👍"
    ref = await bridge.start("sign", userVisibleData=b64(text), userNonVisibleData=b64(b"\x00\x01"))
    await bridge.wait_for(ref, "userSign")
    assert bridge.ui.requests[0].text == text
    await bridge.ui.secrets.put(PASSWORD)
    data = (await bridge.wait_for(ref, "complete"))["completionData"]
    signed = json.loads(base64.b64decode(data["signedData"]))
    assert signed["type"] == "sign" and "sha256" in signed["userNonVisibleData"]


# -- what is shown is what is signed (eidcore/visibletext.py) -------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("Pay 100 SEK to account: \u202e8765-4321\u202c", "U+202E"),
        ("a\u200bb", "U+200B"),
        ("a\u200db", "U+200D"),
        ("a\u00adb", "U+00AD"),
        ("a\u2066b\u2069", "U+2066"),
        ("\u200fabc", "U+200F"),
        ("a\u061cb", "U+061C"),
        ("tag\U000e0041", "U+E0041"),
        ("a\ufeffb", "U+FEFF"),
        ("a\u2028b", "U+2028"),
        ("a\u2029b", "U+2029"),
        ("a\rb", "U+000D"),
        ("\u3164", "U+3164"),
        ("x\u115fy", "U+115F"),
        ("x\u1160", "U+1160"),
        ("x\uffa0", "U+FFA0"),
        ("\u2800", "U+2800"),
        ("x\ue000", "U+E000"),
        ("e" + "\u0301" * 9, "U+0301"),
    ],
)
async def test_invisible_characters_are_refused_with_where(
    bridge: Bridge, text: str, where: str
) -> None:
    status, reply = await bridge.post(
        "/v1/sign", {"nonce": new_nonce(), "userVisibleData": b64(text)}
    )
    assert (status, reply["errorCode"]) == (400, "invalidParameters"), text
    assert where in reply["details"] and "at character" in reply["details"]
    _no_side_effect(bridge)


@pytest.mark.parametrize("text", ["\u3164", " \u3164 ", "\u2800\n\u3164", " \t\n "])
async def test_text_blank_once_invisibles_are_set_aside_is_refused(
    bridge: Bridge, text: str
) -> None:
    status, reply = await bridge.post(
        "/v1/sign", {"nonce": new_nonce(), "userVisibleData": b64(text)}
    )
    assert (status, reply["errorCode"]) == (400, "invalidParameters")
    _no_side_effect(bridge)


async def test_right_to_left_text_is_signed_as_sent(bridge: Bridge) -> None:
    text = "Betala till konto: שלום 1234 5678\r\nRad två"
    ref = await bridge.start("sign", userVisibleData=b64(text))
    await bridge.wait_for(ref, "userSign")
    assert bridge.ui.requests[0].text == text
    await bridge.ui.secrets.put(PASSWORD)
    await bridge.wait_for(ref, "complete")


# -- hostile JSON on every endpoint ---------------------------------------------------------

_HOSTILE_BODIES = [
    b'{"nonce": ' + b"[" * 400 + b"]" * 400 + b"}",
    b'{"nonce": ' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"orderRef": ' + b'{"a": ' * 700 + b"1" + b"}" * 700 + b"}",
    b'{"nonce": ' + b"9" * 5000 + b"}",
    b'{"orderRef": ' + b"1" * 4301 + b"}",
    b'{"nonce": 1e999}',
    b'{"nonce": NaN}',
    b'{"nonce": -Infinity}',
    b'{"nonce": "\\ud800"}',  # a lone surrogate, as the JSON escape
    b'{"orderRef": "\\udfff"}',
    b'{"nonce": "AAAA", "userVisibleData": "\\ud800"}',
    b'{"\\ud800": 1}',
]


@pytest.mark.parametrize("path", ["/v1/auth", "/v1/sign", "/v1/collect", "/v1/cancel"])
@pytest.mark.parametrize("raw", _HOSTILE_BODIES, ids=range(len(_HOSTILE_BODIES)))
async def test_deep_nesting_and_huge_numbers_are_400_without_a_traceback(
    bridge: Bridge, path: str, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    status, reply = await bridge.post(path, raw)
    assert (status, reply["errorCode"]) == (400, "invalidParameters"), reply
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
    _no_side_effect(bridge)


async def test_a_file_with_a_5000_digit_number_harms_only_itself(
    tmp_path: Path, make_token: MakeToken
) -> None:
    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    good = store.add(make_token(ANNA))
    doc = (store.directory / f"{good.id}.eidtoken").read_text()
    hostile = doc.replace('"failedAttempts": 0', '"failedAttempts": ' + "9" * 5000)
    assert hostile != doc
    (store.directory / "ffffffffffffffff.eidtoken").write_text(hostile)
    async with running_bridge(tmp_path / "data", store=store) as b:
        ref = await b.start()
        await b.wait_for(ref, "userSign")
        await b.ui.secrets.put(PASSWORD)
        assert (await b.wait_for(ref, "complete"))["completionData"]["user"]["name"]


async def test_an_order_whose_page_stopped_collecting_is_abandoned(
    tmp_path: Path, make_token: MakeToken
) -> None:
    """A tab closed mid-order: its page stops collecting. After ABANDON_AFTER the order is
    cancelled and its dialog closed, so another site's order is not refused (10054) for
    the three minutes the first one had left."""
    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    store.add(make_token(ANNA))
    now = [dt.datetime.now(dt.UTC)]
    async with running_bridge(tmp_path / "data", store=store, clock=lambda: now[0]) as bridge:
        ref = await bridge.start()
        await bridge.wait_for(ref, "userSign")  # the dialog asks for the password
        for _ in range(3):  # a page that keeps collecting keeps its order
            now[0] += dt.timedelta(seconds=15)
            assert (await bridge.collect(ref))["hintCode"] == "userSign"
        now[0] += dt.timedelta(seconds=19)
        status, body = await bridge.post(
            "/v1/auth", {"nonce": new_nonce()}, origin="https://other.example"
        )
        assert (status, body["errorCode"]) == (409, "alreadyInProgress")  # not gone yet
        now[0] += dt.timedelta(seconds=2)  # 21 s without a collect: the tab is gone
        other = await bridge.start(origin="https://other.example")
        await _eventually(lambda: ref in bridge.ui.closed)  # its dialog closed
        assert (await bridge.collect(ref)) == {
            "orderRef": ref,
            "status": "failed",
            "hintCode": "cancelled",
        }
        # and without a new order, the agent notices by itself within about a second
        await bridge.collect(other, origin="https://other.example")
        now[0] += dt.timedelta(seconds=21)
        await _eventually(lambda: other in bridge.ui.closed)
        assert (await bridge.collect(other, origin="https://other.example"))[
            "hintCode"
        ] == "cancelled"


async def _eventually(condition: Callable[[], bool], seconds: float = 4.0) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    assert condition()


async def test_two_origins_or_two_hosts_are_refused(bridge: Bridge) -> None:
    """No browser sends either twice; which one would count is a guess not made."""
    from multidict import CIMultiDict

    base = [("Content-Type", "application/json"), ("X-Eid-Agent", "1")]
    body = json.dumps({"nonce": new_nonce()})
    twice = CIMultiDict([*base, ("Origin", ORIGIN), ("Origin", "https://evil.example")])
    async with bridge.client.post("/v1/auth", data=body, headers=twice) as response:
        assert response.status == 403
        assert (await response.json())["details"] == "Origin given twice"
    # the client library sends one Host whatever it is given: a raw request sends two,
    # which aiohttp's parser refuses before the gate is asked
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    writer.write(
        f"POST /v1/auth HTTP/1.1\r\nHost: {bridge.host}\r\nHost: {bridge.host}\r\n"
        f"Origin: {ORIGIN}\r\nContent-Type: application/json\r\nX-Eid-Agent: 1\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.0 400"), answer[:100]  # aiohttp's parser refuses it
    assert b"Duplicate 'Host' header" in answer
    assert bridge.ui.requests == []  # no dialog


async def test_an_order_can_be_awaited_without_polling(bridge: Bridge) -> None:
    """The relay door waits on the service: each phase wakes it, the end returns."""
    ref = await bridge.start()
    service = bridge.service
    phases = []
    order = service.order(ref)
    ending = asyncio.create_task(service.outcome(ref))
    while order.phase.pending:
        phases.append(order.phase)
        if order.phase is Phase.USER_SIGN:
            await bridge.ui.secrets.put(PASSWORD)
        order = await asyncio.wait_for(service.next_phase(ref, order.phase), 10)
    assert Phase.USER_SIGN in phases and order.phase is Phase.COMPLETE
    assert (await asyncio.wait_for(ending, 10)).phase is Phase.COMPLETE
    # an ended order answers at once, and so does a phase it has already left
    assert (await service.outcome(ref)).phase is Phase.COMPLETE
    assert (await service.next_phase(ref, Phase.STARTED)).phase is Phase.COMPLETE
    assert not service.busy() and len(service) == 1


async def test_a_cancel_wakes_whoever_awaits_the_order(bridge: Bridge) -> None:
    ref = await bridge.start()
    ending = asyncio.create_task(bridge.service.outcome(ref))
    await asyncio.sleep(0.05)
    assert not ending.done() and bridge.service.busy()
    status, _ = await bridge.post("/v1/cancel", {"orderRef": ref})
    assert status == 200
    assert (await asyncio.wait_for(ending, 5)).phase is Phase.CANCELLED

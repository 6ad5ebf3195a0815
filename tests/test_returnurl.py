"""The one rule for where a browser may be sent back after a relay order."""

from __future__ import annotations

import pytest

from eidcore import returnurl

GOOD = [
    "https://shop.example/eid/return",
    "https://shop.example/eid/return?eidReturn=abc",
    "https://[2001:db8::1]:8443/r",
    "http://127.0.0.1:8080/eid/return",  # a development site on this computer
    "http://localhost:8080/eid/return",
    "http://[::1]/r",
]
BAD = [
    "http://shop.example/eid/return",  # plain http off this computer
    "http://10.0.0.1/r",
    "http://127.0.0.1.evil.example/r",
    "https://shop.example/r#x",
    "https://user@shop.example/r",
    "https:///nohost",
    "https://q pd(tS C{]=",
    "https://[127.0.0.1/r",
    "https://shop.example/r\n",
    "https://shop.example/\u202er",  # bidi: not ASCII
    "https://shop.example:99999/r",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "eid-agent:///?autostarttoken=x",
    "https://shop.example/" + "a" * returnurl.MAX,
    "",
    None,
    42,
]


@pytest.mark.parametrize("url", GOOD)
def test_return_urls_that_may_be_opened(url: str) -> None:
    assert returnurl.check(url) == url
    assert returnurl.is_loopback_http(url) == url.startswith("http:")


@pytest.mark.parametrize("url", BAD)
def test_return_urls_that_are_refused(url: object) -> None:
    with pytest.raises(returnurl.ReturnUrlRefused):
        returnurl.check(url)

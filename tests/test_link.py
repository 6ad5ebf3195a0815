"""What an ``eid-agent://`` link may say and which relays it may send the agent to: the
pure rules of agent/autostart/link.py and the settings' ``[relay] allow``, without a
process (the end-to-end tests are in test_relay_door.py)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

from agent.autostart.errors import LinkRefused, RelayNotAllowed
from agent.autostart.link import Link, check_relay, parse_link
from agent.config import relay_address

TOKEN = "t" * 43


def _link(server: str, **more: str) -> str:
    query = urllib.parse.urlencode({"autostarttoken": TOKEN, "server": server, **more})
    return f"eid-agent:///?{query}"


@pytest.mark.parametrize(
    ("server", "relay", "address"),
    [
        ("https://relay.example", "https://relay.example", "relay.example:443"),
        ("https://Relay.Example.:8443", "https://relay.example:8443", "relay.example:8443"),
        ("https://127.0.0.1", "https://127.0.0.1", "127.0.0.1:443"),
        ("https://[::1]:444", "https://[::1]:444", "[::1]:444"),
        ("https://1.relay.example", "https://1.relay.example", "1.relay.example:443"),
        ("https://xn--rksmrgs-5wao1o.example", "https://xn--rksmrgs-5wao1o.example", None),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "127.0.0.1:8080"),
    ],
)
def test_a_good_link(server: str, relay: str, address: str | None) -> None:
    link = parse_link(_link(server))
    assert (link.token, link.relay) == (TOKEN, relay)
    if address is not None:
        assert link.address == address
    assert link.go_back and not parse_link(_link(server, redirect="null")).go_back


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one number
        "127.1",  # as two
        "0177.0.0.1",  # octal
        "0",  # 0.0.0.0
        "0x7f.0.0.1",  # hexadecimal
        "0x7f000001",
        "0X7F.1",
        "127.000.000.001",  # leading zeros
        "relay.example.123",  # a name that ends in a number is a number to a browser
        "1.2.3.4.5",
        "[0:0:0:0:0:0:0:1]",  # IPv6 not in its canonical form
        "[::FFFF:127.0.0.1]",
        "[::1%25eth0]",  # a zone
        "-relay.example",
        "relay_x.example",
    ],
)
def test_a_host_that_is_not_a_name_or_a_canonical_address_is_refused(host: str) -> None:
    """Before anything resolves or connects: a URL library that normalises these the way
    browsers do would reach loopback with no address check at all."""
    with pytest.raises(LinkRefused):
        parse_link(_link(f"https://{host}"))


@pytest.mark.parametrize(
    "link",
    [
        "eid-agent:///?autostarttoken=short&server=https://relay.example",
        "eid-agent://host/?autostarttoken=" + TOKEN,
        "eid-agent:///?autostarttoken=" + TOKEN + "&autostarttoken=" + TOKEN,
        "eid-agent:///?autostarttoken=" + TOKEN + "&server=https://relay.example&x=1",
        "eid-agent:///?autostarttoken=" + TOKEN + "&server=https://relay.example#frag",
        "https://evil.example/?autostarttoken=" + TOKEN,
        _link("https://relay.example/path"),
        _link("https://user@relay.example"),
        _link("ftp://relay.example"),
        _link("https://[127.0.0.1"),
        _link("https://relay.example:99999"),
        "eid-agent:///?autostarttoken=" + TOKEN + "&server=https://r\u00e9lay.example",
        "eid-agent:///?" + "a=1&" * 5000,
    ],
)
def test_hostile_links_are_refused(link: str) -> None:
    with pytest.raises(LinkRefused):
        parse_link(link)


def _relay(server: str) -> Link:
    return parse_link(_link(server))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "192.168.1.1",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "0.0.0.0",  # noqa: S104 - an address a relay's name resolves to, not a bind
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "64:ff9b:1::1",  # local-use NAT64: never global
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:5::1",  # 6to4 of 10.0.0.5
        "::7f00:1",  # IPv4-compatible 127.0.0.1
    ],
)
def test_addresses_in_this_computers_network_are_refused(address: str) -> None:
    with pytest.raises(RelayNotAllowed):
        check_relay(_relay("https://relay.example"), [address], internal=(), allow_http=False)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    check_relay(_relay("https://relay.example"), [address], internal=(), allow_http=False)


def test_one_private_address_among_public_ones_refuses_the_relay() -> None:
    with pytest.raises(RelayNotAllowed):
        check_relay(
            _relay("https://relay.example"), ["8.8.8.8", "10.0.0.1"], internal=(), allow_http=False
        )
    with pytest.raises(RelayNotAllowed):
        check_relay(_relay("https://relay.example"), [], internal=(), allow_http=False)


def test_the_settings_name_an_internal_relay_by_host_and_port() -> None:
    allowed = (relay_address("relay.internal.example"), relay_address("127.0.0.1:8444"))
    assert allowed == ("relay.internal.example:443", "127.0.0.1:8444")
    check_relay(
        _relay("https://relay.internal.example"), ["10.0.0.5"], internal=allowed, allow_http=False
    )
    check_relay(_relay("https://127.0.0.1:8444"), ["127.0.0.1"], internal=allowed, allow_http=False)
    for other in ("https://relay.internal.example:8443", "https://127.0.0.1:22"):
        with pytest.raises(RelayNotAllowed):  # a bare host opens its 443 only, not every port
            check_relay(_relay(other), ["10.0.0.5"], internal=allowed, allow_http=False)


def test_http_only_on_loopback_for_a_development_agent() -> None:
    plain = _relay("http://127.0.0.1:8080")
    check_relay(plain, ["127.0.0.1"], internal=(), allow_http=True)
    with pytest.raises(RelayNotAllowed):
        check_relay(plain, ["127.0.0.1"], internal=(), allow_http=False)
    with pytest.raises(RelayNotAllowed):
        check_relay(_relay("http://relay.example"), ["8.8.8.8"], internal=(), allow_http=True)


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("relay.example", "relay.example:443"),
        ("Relay.Example.:8443", "relay.example:8443"),
        ("[fd00::1]", "[fd00::1]:443"),
        ("[FD00::1]:8443", "[fd00::1]:8443"),
        ("10.0.0.5:444", "10.0.0.5:444"),
    ],
)
def test_relay_allow_entries(entry: str, address: str) -> None:
    assert relay_address(entry) == address


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "relay.example:",
        "relay.example:0",
        "relay.example:70000",
        "fd00::1",
        "[fd00::1",
        "relay.example/path",
        "[fd00::1]x",
    ],
)
def test_relay_allow_entries_that_say_nothing_clear_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        relay_address(entry)


def test_the_links_socket_fits_a_socket_name_wherever_the_runtime_folder_is(
    tmp_path: Path,
) -> None:
    """A long runtime folder (a long $TMPDIR, no $XDG_RUNTIME_DIR) still gets a socket the
    agent can listen on and the handler can reach, the same for both."""
    import socket

    from agent.autostart.handoff import MAX_SOCKET_PATH, socket_path

    data = tmp_path / "data"
    short = socket_path(data, tmp_path)
    assert short.parent == tmp_path
    deep = tmp_path / ("d" * 120)
    moved = socket_path(data, deep)
    assert len(os.fsencode(moved)) <= MAX_SOCKET_PATH
    assert moved == socket_path(data, deep) and moved.name == short.name
    assert moved.parent.name == f"eid-agent-{os.getuid()}"
    with socket.socket(socket.AF_UNIX) as sock:  # the kernel takes it
        sock.bind(str(tmp_path / moved.name))

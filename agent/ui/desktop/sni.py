"""The tray icon as a StatusNotifierItem with a ``com.canonical.dbusmenu`` menu, served on
the session bus from the agent's own process (ADR 0024): the panels of KDE, GNOME with its
AppIndicator extension, XFCE, Cinnamon, LXQt, waybar… draw it and its menu, so no GTK is
loaded while nobody uses a dialog. Where no StatusNotifier host runs, ``start`` says so
and the dialog helper's XEmbed tray is used instead.

The only importer of jeepney. What a host may ask is answered from ``_Item``'s state;
anything else is D-Bus's ``UnknownMethod``. A host that goes and comes back (a panel
restarting) is registered with again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from jeepney import DBusAddress, MatchRule, Message, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import DBusRouter, open_dbus_router
from jeepney.low_level import HeaderFields, MessageFlag
from jeepney.wrappers import DBusErrorResponse, new_error, new_method_return, new_signal

from agent.ui.desktop.trayicon import pixmap

__all__ = ["StatusNotifier"]

log = logging.getLogger(__name__)

WATCHER = DBusAddress(
    "/StatusNotifierWatcher",
    bus_name="org.kde.StatusNotifierWatcher",
    interface="org.kde.StatusNotifierWatcher",
)
ITEM_PATH, MENU_PATH = "/StatusNotifierItem", "/MenuBar"
ITEM_IFACE, MENU_IFACE = "org.kde.StatusNotifierItem", "com.canonical.dbusmenu"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
SIZES = (22, 32, 48)  # hosts pick the closest to their panel
_STATUS = {
    "ready": "Active",
    "busy": "Active",
    "update": "NeedsAttention",
    "problem": "NeedsAttention",
}


def _node(interface: str, members: str) -> str:
    return f'<node><interface name="{interface}">{members}</interface></node>'


def _args(*types: str, out: int = 0) -> str:
    """``types`` in, the last ``out`` of them out."""
    cut = len(types) - out
    return "".join(
        f'<arg type="{t}" direction="{"in" if n < cut else "out"}"/>' for n, t in enumerate(types)
    )


def _method(name: str, *types: str, out: int = 0) -> str:
    return f'<method name="{name}">{_args(*types, out=out)}</method>'


def _property(name: str, kind: str) -> str:
    return f'<property name="{name}" type="{kind}" access="read"/>'


_ITEM_PROPERTIES = (
    ("Category", "s"),
    ("Id", "s"),
    ("Title", "s"),
    ("Status", "s"),
    ("WindowId", "i"),
    ("IconName", "s"),
    ("IconPixmap", "a(iiay)"),
    ("AttentionIconPixmap", "a(iiay)"),
    ("ToolTip", "(sa(iiay)ss)"),
    ("ItemIsMenu", "b"),
    ("Menu", "o"),
)
_INTROSPECTION = {
    ITEM_PATH: _node(
        ITEM_IFACE,
        "".join(_property(n, t) for n, t in _ITEM_PROPERTIES)
        + "".join(_method(m, "i", "i") for m in ("ContextMenu", "Activate", "SecondaryActivate"))
        + _method("Scroll", "i", "s")
        + "".join(f'<signal name="{n}"/>' for n in ("NewIcon", "NewAttentionIcon", "NewToolTip"))
        + '<signal name="NewStatus"><arg type="s"/></signal>',
    ),
    MENU_PATH: _node(
        MENU_IFACE,
        _property("Version", "u")
        + _property("Status", "s")
        + _property("TextDirection", "s")
        + _method("GetLayout", "i", "i", "as", "u", "(ia{sv}av)", out=2)
        + _method("GetGroupProperties", "ai", "as", "a(ia{sv})", out=1)
        + _method("GetProperty", "i", "s", "v", out=1)
        + _method("Event", "i", "s", "v", "u")
        + _method("EventGroup", "a(isvu)", "ai", out=1)
        + _method("AboutToShow", "i", "b", out=1)
        + _method("AboutToShowGroup", "ai", "ai", "ai", out=2)
        + '<signal name="LayoutUpdated"><arg type="u"/><arg type="i"/></signal>',
    ),
}


# What each method this object answers takes: another body is InvalidArgs, so nothing
# below indexes a body it has not checked.
_SIGNATURES = {
    "Introspect": "",
    "Get": "ss",
    "GetAll": "s",
    "Activate": "ii",
    "SecondaryActivate": "ii",
    "ContextMenu": "ii",
    "Scroll": "is",
    "GetLayout": "iias",
    "GetGroupProperties": "aias",
    "GetProperty": "is",
    "Event": "isvu",
    "EventGroup": "a(isvu)",
    "AboutToShow": "i",
    "AboutToShowGroup": "ai",
}
_ITEM_METHODS = frozenset({"Activate", "SecondaryActivate", "ContextMenu", "Scroll"})


class _Item:
    """What the icon and its menu show now. Pure."""

    def __init__(self) -> None:
        self.state, self.tooltip, self.revision = "ready", "", 1
        self.items: tuple[tuple[str, str, bool], ...] = ()

    def pixmaps(self) -> list[tuple[int, int, bytes]]:
        return [(size, size, pixmap(self.state, size)) for size in SIZES]

    def item_properties(self) -> dict[str, tuple[str, Any]]:
        return {
            "Category": ("s", "ApplicationStatus"),
            "Id": ("s", "eid-agent"),
            "Title": ("s", "eID agent"),
            "Status": ("s", _STATUS.get(self.state, "Active")),
            "WindowId": ("i", 0),
            "IconName": ("s", ""),
            "IconPixmap": ("a(iiay)", self.pixmaps()),
            "AttentionIconPixmap": ("a(iiay)", self.pixmaps()),
            "ToolTip": ("(sa(iiay)ss)", ("", [], "eID agent", self.tooltip)),
            "ItemIsMenu": ("b", True),
            "Menu": ("o", MENU_PATH),
        }

    @staticmethod
    def menu_properties() -> dict[str, tuple[str, Any]]:
        return {"Version": ("u", 3), "Status": ("s", "normal"), "TextDirection": ("s", "ltr")}

    def entry(self, number: int) -> dict[str, tuple[str, Any]]:
        """An item's dbusmenu properties; 0 is the root."""
        if number == 0:
            return {"children-display": ("s", "submenu")}
        _, label, enabled = self.items[number - 1]
        return {"label": ("s", label.replace("_", "__")), "enabled": ("b", enabled)}

    def layout(self) -> tuple[int, tuple[int, dict[str, tuple[str, Any]], list[Any]]]:
        none: list[Any] = []
        numbers = range(1, len(self.items) + 1)
        children: list[Any] = [("(ia{sv}av)", (n, self.entry(n), none)) for n in numbers]
        return self.revision, (0, self.entry(0), children)

    def chosen(self, number: int) -> str | None:
        return self.items[number - 1][0] if 0 < number <= len(self.items) else None


class StatusNotifier:
    """``on_menu``: what a chosen menu item's id is handed to."""

    def __init__(self, on_menu: Callable[[str], None]) -> None:
        self._on_menu = on_menu
        self._item = _Item()
        self._name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self._stack = contextlib.AsyncExitStack()
        self._router: DBusRouter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> bool:
        """Whether a StatusNotifier host shows the icon now. False: no session bus, no
        watcher or no host (said once in the log); nothing is left open then."""
        if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            log.info("no StatusNotifier tray: no session bus")
            return False
        try:
            router = await self._stack.enter_async_context(open_dbus_router("SESSION"))
            self._router = router
            if not await self._host_registered():
                log.info("no StatusNotifier tray: no host on the session bus")
                await self.aclose()
                return False
            calls = self._stack.enter_context(
                router.filter(MatchRule(type="method_call"), queue=asyncio.Queue(256))
            )
            owners = MatchRule(
                type="signal", interface="org.freedesktop.DBus", member="NameOwnerChanged"
            )
            owners.add_arg_condition(0, WATCHER.bus_name)
            await router.send_and_get_reply(message_bus.AddMatch(owners))
            changes = self._stack.enter_context(router.filter(owners, queue=asyncio.Queue(8)))
            await router.send_and_get_reply(message_bus.RequestName(self._name))
            self._tasks = [
                asyncio.create_task(self._serve(calls)),
                asyncio.create_task(self._follow(changes)),
            ]
            await self._register()
        except (OSError, DBusErrorResponse, ValueError) as exc:
            log.info("no StatusNotifier tray: %s", exc)
            await self.aclose()
            return False
        log.info("tray: a StatusNotifierItem (%s)", self._name)
        return True

    async def show(self, state: str, tooltip: str, items: Sequence[tuple[str, str, bool]]) -> None:
        item = self._item
        icon = state != item.state
        tip = tooltip != item.tooltip
        menu = tuple(items) != item.items
        item.state, item.tooltip = state, tooltip
        if menu:
            item.items, item.revision = tuple(items), item.revision + 1
        if icon:
            await self._signal(ITEM_PATH, ITEM_IFACE, "NewIcon")
            await self._signal(ITEM_PATH, ITEM_IFACE, "NewAttentionIcon")
            await self._signal(
                ITEM_PATH, ITEM_IFACE, "NewStatus", "s", (_STATUS.get(state, "Active"),)
            )
        if tip:
            await self._signal(ITEM_PATH, ITEM_IFACE, "NewToolTip")
        if menu:
            await self._signal(MENU_PATH, MENU_IFACE, "LayoutUpdated", "ui", (item.revision, 0))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):  # the bus may be gone already
            await self._stack.aclose()
        self._router = None

    # -- the bus ------------------------------------------------------------------------------

    async def _host_registered(self) -> bool:
        assert self._router is not None
        get = new_method_call(
            WATCHER.with_interface(PROPS_IFACE),
            "Get",
            "ss",
            (WATCHER.interface, "IsStatusNotifierHostRegistered"),
        )
        reply = await self._router.send_and_get_reply(get)
        if reply.header.message_type is MessageType.error:
            return False
        ((_, registered),) = reply.body
        return bool(registered)

    async def _register(self) -> None:
        assert self._router is not None
        call = new_method_call(WATCHER, "RegisterStatusNotifierItem", "s", (self._name,))
        reply = await self._router.send_and_get_reply(call)
        if reply.header.message_type is MessageType.error:
            raise DBusErrorResponse(reply)

    async def _follow(self, changes: asyncio.Queue[Message]) -> None:
        """A watcher that comes back (the panel restarted) is told about the icon again."""
        while True:
            message = await changes.get()
            _, _, new_owner = message.body
            if new_owner:
                with contextlib.suppress(DBusErrorResponse, OSError):
                    await self._register()
                    log.info("tray: registered again with a new StatusNotifier watcher")

    async def _signal(
        self,
        path: str,
        interface: str,
        name: str,
        sig: str | None = None,
        body: tuple[Any, ...] = (),
    ) -> None:
        if self._router is not None:
            with contextlib.suppress(OSError):
                await self._router.send(
                    new_signal(DBusAddress(path, interface=interface), name, sig, body)
                )

    async def _serve(self, calls: asyncio.Queue[Message]) -> None:
        assert self._router is not None
        while True:
            call = await calls.get()
            try:
                reply = self._answer(call)
            except Exception as exc:  # an odd question must not end the tray: one line
                log.warning("tray: a D-Bus call was not answered (%s)", type(exc).__name__)
                reply = new_error(call, "org.freedesktop.DBus.Error.Failed")
            if not call.header.flags & MessageFlag.no_reply_expected:
                with contextlib.suppress(OSError):
                    await self._router.send(reply)

    def _answer(self, call: Message) -> Message:
        fields = call.header.fields
        path = fields.get(HeaderFields.path)
        interface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        body = call.body
        expected = _SIGNATURES.get(member or "")
        if expected is not None and fields.get(HeaderFields.signature, "") != expected:
            return new_error(call, "org.freedesktop.DBus.Error.InvalidArgs")
        item = self._item
        if interface == "org.freedesktop.DBus.Introspectable" and path in _INTROSPECTION:
            return new_method_return(call, "s", (_INTROSPECTION[path],))
        if interface == PROPS_IFACE and path in (ITEM_PATH, MENU_PATH):
            properties = item.item_properties() if path == ITEM_PATH else item.menu_properties()
            if member == "GetAll":
                return new_method_return(call, "a{sv}", (properties,))
            if member == "Get" and body[1] in properties:
                return new_method_return(call, "v", (properties[body[1]],))
        if path == ITEM_PATH and member in _ITEM_METHODS:
            return new_method_return(call)  # the host shows the menu (ItemIsMenu)
        if path == MENU_PATH and interface in (MENU_IFACE, None):
            return self._menu(call, member, body)
        return new_error(call, "org.freedesktop.DBus.Error.UnknownMethod")

    def _menu(self, call: Message, member: str | None, body: tuple[Any, ...]) -> Message:
        item = self._item
        if member == "GetLayout":
            return new_method_return(call, "u(ia{sv}av)", item.layout())
        if member == "GetGroupProperties":
            ids = [n for n in body[0] if 0 <= n <= len(item.items)] or range(len(item.items) + 1)
            return new_method_return(call, "a(ia{sv})", ([(n, item.entry(n)) for n in ids],))
        if member == "GetProperty" and 0 <= body[0] <= len(item.items):
            value = item.entry(body[0]).get(body[1])
            if value is not None:
                return new_method_return(call, "v", (value,))
        if member == "Event":
            self._event(body[0], body[1])
            return new_method_return(call)
        if member == "EventGroup":
            for number, event, _data, _time in body[0]:
                self._event(number, event)
            return new_method_return(call, "ai", ([],))
        if member == "AboutToShow":
            return new_method_return(call, "b", (False,))
        if member == "AboutToShowGroup":
            return new_method_return(call, "aiai", ([], []))
        return new_error(call, "org.freedesktop.DBus.Error.UnknownMethod")

    def _event(self, number: int, event: str) -> None:
        chosen = self._item.chosen(number)
        if event == "clicked" and chosen is not None:
            self._on_menu(chosen)

"""The desktop UI's own process: GTK 3 dialogs, driven over stdin/stdout with one JSON
object per line (ADR 0010). The only importer of gi.

It decides nothing: the agent sends every text already rendered from the catalogue and
the view logic (agent/ui/view.py); the helper draws it, and answers with what the person
did. Requests carry an ``id``; each gets exactly one answer with that ``id``:

    {"id", "op": "secret", "ref", "title", "site": {prefix, registrable, port, warning},
     "lead", "call" (a phone order's who-called-whom, or null), "blocks": [...],
     "credential", "label", "problem": [title, body] | null, "ok", "cancel"}
        -> {"id", "secret": "..."} | {"id", "cancelled": true}
        with "pin_pad": true, no field (the PIN goes on the reader): -> {"id", "go": true}
    {"id", "op": "choose", "ref", "title", "site", "lead", "options": [..], "ok", "cancel"}
        -> {"id", "choice": index} | {"id", "cancelled": true}
    {"id", "op": "attention", "ref", "title", "heading", "site", "lead", "ok", "cancel"}
        -> {"id", "ok": true} | {"id", "cancelled": true}
    {"id", "op": "notice", "title", "body", "code"|null, "ok", "link",
     "action": {"id": "startUpdate"|"openLink", "label"}|null, "close"} -> {"id", "done": true}
    and, unasked, when a notice's action button is pressed: {"event": "action", "action": id}
    {"id", "op": "close", "ref"}                                      -> {"id", "done": true}
    {"id", "op": "tray", "state", "tooltip", "items": [{"id", "label", "enabled"}]}
        -> {"id", "done": true} | {"id", "done": false, "error"} (no tray here)
    and, unasked, when a tray menu item is chosen:  {"event": "menu", "item": id}
    {"id", "op": "secrets", "ref", "title", "heading", "problem": [title, body]|null,
     "fields": [label | [label, "visible"], ...], "note", "ok", "cancel"}
        -> {"id", "values": [...]} | {"id", "cancelled"}
    {"id", "op": "manager", "title", "rows": [{"text", "buttons": [{"id", "label"}]}],
     "close"}  -> {"id", "done": true}; a button: {"event": "manager", "item": id}

    {"id", "op": "settings", "ref", "title", "tabs", "labels", "languages", "values",
     "update_info", "problem", "focus", "ok", "cancel"} -> {"id", "values": {...}} | cancelled
    {"id", "op": "confirm", "ref", "title", "heading", "body", "check"|null, "ok", "cancel"}
        -> {"id", "ok": true, "checked": bool} | {"id", "cancelled": true}
    {"id", "op": "report", "ref", "title", "text", "copy", "copied", "close"}
        -> {"id", "done": true}; the copy button: {"event": "copied", "ref"}
    {"id", "op": "notify", "title", "body", "urgent"} -> {"id", "done": bool, "error"?}
    {"id", "op": "untray"} -> {"id", "done": true}: the tray icon here goes
    {"id", "op": "retire"} -> {"id", "retired": bool}: ends this process when no window is
        up and the tray is not here (the agent starts it again for the next question)

A dialog that waits for a password or PIN ("secret", "choose", "secrets", "attention") may carry
"present": {"raise", "plain", "watch"} (see _show); one that never became usable within
"watch" seconds answers {"id", "blocked": reason}.

Where a StatusNotifier host runs, the agent serves the tray itself (``sni``) and this
process comes and goes with the dialogs. Elsewhere the tray is here: pystray's (its
appindicator backend, which docks in an XEmbed tray), sharing this process's GTK loop.

A window stays above others, takes focus, and answers to the keyboard alone (Enter,
Escape, Tab); every field has a screen-reader name (ATK). Closing a window is Cancel.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

# Dialogs draw with cairo and need no OpenGL; without this, GDK's GLX probe loads the
# Mesa driver (and LLVM with it): 98 MB resident instead of 42 (measured under Xvfb).
os.environ.setdefault("GDK_GL", "disable")

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, Gio, GLib, Gtk, Pango  # noqa: E402 - after require_version

Answer = Callable[[dict[str, Any]], None]


def _markup(text: str) -> str:
    return str(GLib.markup_escape_text(text))


def _site_label(site: dict[str, str]) -> Gtk.Label:
    """The site with its registrable domain in bold and larger; the rest dimmed."""
    label = Gtk.Label(xalign=0)
    prefix = f"<span alpha='60%'>{_markup(site['prefix'])}</span>" if site["prefix"] else ""
    port = f"<span alpha='60%'>{_markup(site['port'])}</span>" if site["port"] else ""
    label.set_markup(
        f"<span size='x-large'>{prefix}<b>{_markup(site['registrable'])}</b>{port}</span>"
    )
    label.set_selectable(False)
    label.get_accessible().set_name(site["prefix"] + site["registrable"] + site["port"])
    return label


def _problem_label(problem: list[str]) -> Gtk.Label:
    """What went wrong last time (title and body), in red above the fields."""
    title, body = problem
    label = Gtk.Label(xalign=0, wrap=True, max_width_chars=56)
    label.set_markup(f"<span foreground='#b00020'><b>{_markup(title)}</b>\n{_markup(body)}</span>")
    return label


def _field(box: Gtk.Box, text: str, *, visible: bool) -> Gtk.Entry:
    """A labelled entry (``_`` marks the mnemonic), named for screen readers."""
    label = Gtk.Label.new_with_mnemonic(text)
    label.set_xalign(0)
    entry = Gtk.Entry(visibility=visible, activates_default=True)
    entry.get_accessible().set_name(text.replace("_", ""))
    label.set_mnemonic_widget(entry)
    box.pack_start(label, False, False, 0)
    box.pack_start(entry, False, False, 0)
    return entry


def text_view(blocks: list[dict[str, Any]], keep_order: list[str]) -> Gtk.TextView:
    """The text to sign, verbatim apart from the simple formatting, read-only. A block
    marked ``rtl`` is drawn between ``keep_order``'s opening and closing controls, after
    its mark, so its glyphs stand in the order of its characters (agent/ui/view.py)."""
    view = Gtk.TextView(editable=False, cursor_visible=False, wrap_mode=Gtk.WrapMode.WORD_CHAR)
    view.set_direction(Gtk.TextDirection.LTR)
    view.get_accessible().set_name("Text to sign")
    buffer = view.get_buffer()
    tags = {
        "bold": buffer.create_tag("bold", weight=Pango.Weight.BOLD),
        "italic": buffer.create_tag("italic", style=Pango.Style.ITALIC),
        "heading1": buffer.create_tag("heading1", weight=Pango.Weight.BOLD, scale=1.4),
        "heading2": buffer.create_tag("heading2", weight=Pango.Weight.BOLD, scale=1.2),
        "heading3": buffer.create_tag("heading3", weight=Pango.Weight.BOLD),
        "headerRow": buffer.create_tag("headerRow", weight=Pango.Weight.BOLD, underline=1),
    }
    for block in blocks:
        kind = block["kind"]
        if kind == "rule":
            buffer.insert(buffer.get_end_iter(), "────────────\n")
            continue
        if block.get("rtl"):
            opening, closing, mark = keep_order
            buffer.insert(buffer.get_end_iter(), mark + opening)
        if kind == "item":
            buffer.insert(buffer.get_end_iter(), "  • ")
        for n, cell in enumerate(block["cells"]):
            if n:
                buffer.insert(buffer.get_end_iter(), "  │  ")
            for run in cell:
                names = [t for t in ("bold", "italic") if run.get(t)]
                if kind in tags:
                    names.append(kind)
                buffer.insert_with_tags(
                    buffer.get_end_iter(), run["text"], *(tags[t] for t in names)
                )
        if block.get("rtl"):
            buffer.insert(buffer.get_end_iter(), closing)
        buffer.insert(buffer.get_end_iter(), "\n")
    return view


def _scrolled(view: Gtk.Widget) -> Gtk.Widget:
    scrolled = Gtk.ScrolledWindow(
        min_content_height=120, max_content_height=320, propagate_natural_height=True
    )
    scrolled.add(view)
    return scrolled


_TRAY_COLOURS = {
    "ready": (0, 128, 72),  # green: ready
    "busy": (24, 96, 200),  # blue: an identification or signing in progress
    "update": (230, 140, 0),  # orange: an update is required
    "problem": (190, 0, 32),  # red: something needs the person
}


def _tray_image(state: str) -> Any:
    """A round badge in the state's colour with a key-hole, so the state shows at a glance
    (and not by colour alone: busy has a ring, problem a bar)."""
    from PIL import Image, ImageDraw

    size = 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = _TRAY_COLOURS.get(state, _TRAY_COLOURS["problem"])
    draw.ellipse((2, 2, size - 2, size - 2), fill=(*colour, 255))
    draw.ellipse((24, 14, 40, 30), fill=(255, 255, 255, 255))
    draw.polygon([(28, 26), (36, 26), (40, 50), (24, 50)], fill=(255, 255, 255, 255))
    if state == "busy":
        draw.ellipse((6, 6, size - 6, size - 6), outline=(255, 255, 255, 255), width=3)
    if state in ("problem", "update"):
        draw.rectangle((8, 54, size - 8, 60), fill=(255, 255, 255, 255))
    return image


def blocked_reason(seen: bool, reached: bool, held_elsewhere: bool) -> str | None:
    """Why a dialog that has been up for the watch period cannot be used, or None.

    ``seen``: it was mapped and not fully covered at some moment; ``reached``: a key press
    reached it, or it could take the keyboard; ``held_elsewhere``: every probe found the
    keyboard grabbed by another program. Not having the focus is not being blocked: the
    window manager chose not to focus it, and a click does. Pure."""
    if not seen:
        return "never visible: another window covers it"
    if not reached and held_elsewhere:
        return "never reached: another program holds the keyboard"
    return None


PROBE_MS = 1000  # how often an unreached dialog checks whether the keyboard is free


def _show(
    window: Gtk.Window,
    focus: Gtk.Widget,
    present: dict[str, Any] | None,
    blocked: Callable[[str], None],
) -> None:
    """Show a dialog that waits for the keyboard, and watch that it can get it.

    ``present``: {"raise": take the keyboard and come back to the front whenever covered
    or left (Settings → Advanced), "plain": see _window, "watch": seconds after which a
    dialog that never became usable is reported through ``blocked``}. Whether another
    program holds the keyboard is probed with a grab of our own, released at once unless
    taking over (GTK reports the focus as ours even while another client's grab takes
    every key press — measured under Xvfb)."""
    present = present or {}
    take_over = bool(present.get("raise"))
    seen = reached = False
    probes = failures = 0
    grabbed: list[Gdk.Seat] = []
    raises: list[int] = []  # monotonic ms of recent re-raises, to never fight in a loop
    window.add_events(Gdk.EventMask.VISIBILITY_NOTIFY_MASK | Gdk.EventMask.FOCUS_CHANGE_MASK)

    def grab() -> bool:
        seat = Gdk.Display.get_default().get_default_seat()
        status = seat.grab(
            window.get_window(), Gdk.SeatCapabilities.KEYBOARD, True, None, None, None, None
        )
        if status == Gdk.GrabStatus.SUCCESS:
            grabbed.append(seat)
            return True
        return False

    def release(*_: object) -> None:
        for seat in grabbed:
            seat.ungrab()
        grabbed.clear()

    def again() -> None:
        now = GLib.get_monotonic_time() // 1000
        raises[:] = [r for r in raises if now - r < 1000]
        if len(raises) < 4:  # at most four a second: a program that raises itself wins
            raises.append(now)
            window.present_with_time(Gdk.CURRENT_TIME)

    def on_visibility(_w: Gtk.Widget, event: Any) -> bool:
        nonlocal seen
        if event.state != Gdk.VisibilityState.FULLY_OBSCURED:
            seen = True
        elif take_over:
            again()
        return False

    def on_focus(*_: object) -> None:
        if take_over and not window.get_property("has-toplevel-focus"):
            again()

    def on_key(*_: object) -> bool:
        nonlocal reached
        reached = True
        return False

    def probe() -> bool:
        nonlocal reached, probes, failures
        if window.get_window() is None or reached:
            return False  # answered and gone, or known to work
        if not window.get_mapped():
            return True  # not on the screen yet: nothing to learn
        probes += 1
        if grab():
            reached = True
            if take_over:
                sys.stderr.write("eid-agent ui: dialog took the keyboard\n")
            else:
                release()
            return False
        failures += 1
        return True

    def check() -> bool:
        if window.get_window() is None:
            return False  # answered and gone meanwhile
        if not reached:
            probe()
        reason = blocked_reason(seen, reached, probes > 0 and failures == probes)
        if reason is not None:
            blocked(reason)
        return False

    window.connect("visibility-notify-event", on_visibility)
    window.connect("notify::has-toplevel-focus", on_focus)
    window.connect("key-press-event", on_key)
    window.connect("destroy", release)
    window.show_all()
    window.present_with_time(Gtk.get_current_event_time())
    focus.grab_focus()
    if take_over:  # take the keyboard as soon as the window is there
        window.connect("map-event", lambda *_: probe() and False)
    if present.get("watch"):
        GLib.timeout_add(PROBE_MS, probe)
        GLib.timeout_add(int(float(present["watch"]) * 1000), check)


class Helper:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[Gtk.Window, Callable[[], None]]] = {}
        self._icon: Any = None
        self._buffer = b""
        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR,
            self._on_input,
        )

    # -- the pipe ------------------------------------------------------------------------------

    def _on_input(self, fd: int, condition: int) -> bool:
        request: Any = None
        chunk = os.read(fd, 65536) if condition & GLib.IO_IN else b""
        if not chunk:
            Gtk.main_quit()  # the agent is gone
            return False
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                self._handle(request)
            except Exception as exc:  # one bad request must not end the dialogs
                sys.stderr.write(f"eid-agent ui: {type(exc).__name__}: {exc}\n")
                ident = request.get("id") if isinstance(request, dict) else None
                if ident is not None:
                    self._send({"id": ident, "cancelled": True, "error": str(exc)})
        return True

    @staticmethod
    def _send(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def _handle(self, request: dict[str, Any]) -> None:
        ident = request["id"]

        def answer(result: dict[str, Any]) -> None:
            self._send({"id": ident, **result})

        op = request["op"]
        if op == "close":
            entry = self._windows.pop(request["ref"], None)
            if entry is not None:
                window, cancel = entry
                cancel()
                window.destroy()
            answer({"done": True})
        elif op == "notice":
            self._notice(request, answer)
        elif op in ("secret", "choose"):
            self._dialog(request, answer)
        elif op == "attention":
            self._attention(request, answer)
        elif op == "tray":
            self._tray(request, answer)
        elif op == "secrets":
            self._secrets(request, answer)
        elif op == "manager":
            self._manager(request, answer)
        elif op == "settings":
            self._settings(request, answer)
        elif op == "confirm":
            self._confirm(request, answer)
        elif op == "report":
            self._report(request, answer)
        elif op == "notify":
            self._notify(request, answer)
        elif op == "retire":
            self._retire(answer)
        elif op == "untray":  # a StatusNotifier host came: the agent shows the icon now
            if self._icon is not None:
                self._icon.stop()
                self._icon = None
            answer({"done": True})
        else:
            answer({"error": f"unknown op {op!r}"})

    def _retire(self, answer: Answer) -> None:
        """The agent has had no question for a while: end this process, unless a window
        is still up or the tray lives here."""
        shown = any(w.get_visible() for w in Gtk.Window.list_toplevels())
        if shown or self._windows or self._icon is not None:
            answer({"retired": False})
            return
        answer({"retired": True})
        Gtk.main_quit()

    # -- windows ---------------------------------------------------------------------------------

    def _window(
        self, title: str, present: dict[str, Any] | None = None
    ) -> tuple[Gtk.Window, Gtk.Box]:
        """A dialog window: above others and centred; or, with Settings → Advanced's
        "plain windows", an ordinary top-level window that asks for attention (some
        desktops refuse to raise dialog-like windows)."""
        window = Gtk.Window(title=title, resizable=False, modal=False)
        if present and present.get("plain"):
            window.set_type_hint(Gdk.WindowTypeHint.NORMAL)
            window.set_urgency_hint(True)
            window.set_position(Gtk.WindowPosition.MOUSE)
        else:
            window.set_type_hint(Gdk.WindowTypeHint.DIALOG)
            window.set_keep_above(True)
            window.set_position(Gtk.WindowPosition.CENTER)
        window.set_default_size(460, -1)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=12)
        box.set_border_width(18)
        window.add(box)
        return window, box

    def _buttons(
        self, box: Gtk.Box, ok: str, cancel: str | None
    ) -> tuple[Gtk.Button, Gtk.Button | None]:
        row = Gtk.ButtonBox(orientation=Gtk.Orientation.HORIZONTAL, spacing=8)
        row.set_layout(Gtk.ButtonBoxStyle.END)
        cancel_button = Gtk.Button.new_with_mnemonic(cancel) if cancel else None
        if cancel_button is not None:
            row.add(cancel_button)
        ok_button = Gtk.Button.new_with_mnemonic(ok)
        ok_button.set_can_default(True)
        row.add(ok_button)
        box.pack_end(row, False, False, 0)
        return ok_button, cancel_button

    def _dialog(self, request: dict[str, Any], answer: Answer) -> None:
        window, box = self._window(request["title"], request.get("present"))
        box.pack_start(_site_label(request["site"]), False, False, 0)
        if request["site"].get("warning"):
            warning = Gtk.Label(
                label=request["site"]["warning"], xalign=0, wrap=True, max_width_chars=56
            )
            box.pack_start(warning, False, False, 0)
        box.pack_start(
            Gtk.Label(label=request["lead"], xalign=0, wrap=True, max_width_chars=56),
            False,
            False,
            0,
        )
        if request.get("blocks"):
            if request.get("rtl_note"):
                box.pack_start(
                    Gtk.Label(label=request["rtl_note"], xalign=0, wrap=True, max_width_chars=56),
                    False,
                    False,
                    0,
                )
            view = text_view(request["blocks"], request.get("keep_order", ["", "", ""]))
            box.pack_start(_scrolled(view), True, True, 0)
        if request.get("call"):  # a phone order: who called whom, after what is signed
            box.pack_start(
                Gtk.Label(label=request["call"], xalign=0, wrap=True, max_width_chars=56),
                False,
                False,
                0,
            )
        if request["op"] == "secret":
            if request.get("credential"):
                box.pack_start(
                    Gtk.Label(label=request["credential"], xalign=0, wrap=True, max_width_chars=56),
                    False,
                    False,
                    0,
                )
            if request.get("problem"):
                box.pack_start(_problem_label(request["problem"]), False, False, 0)
            if request.get("pin_pad"):  # no field: the PIN is typed on the reader
                box.pack_start(
                    Gtk.Label(label=request["label"], xalign=0, wrap=True, max_width_chars=56),
                    False,
                    False,
                    0,
                )
                focus: Gtk.Widget = window  # consent is typing the PIN on the pad

                def ok_result() -> dict[str, Any] | None:
                    return {"go": True}
            else:
                entry = _field(box, request["label"], visible=False)
                focus = entry

                def ok_result() -> dict[str, Any] | None:
                    return {"secret": entry.get_text()}
        else:
            group: Gtk.RadioButton | None = None
            buttons = []
            for text in request["options"]:
                button = Gtk.RadioButton.new_with_label_from_widget(group, text)
                group = group or button
                buttons.append(button)
                box.pack_start(button, False, False, 0)
            focus = buttons[0]

            def ok_result() -> dict[str, Any] | None:
                return {"choice": next(i for i, b in enumerate(buttons) if b.get_active())}

        self._modal(
            request, answer, window, box, ok_result, focus, present=request.get("present") or {}
        )

    def _attention(self, request: dict[str, Any], answer: Answer) -> None:
        """Before a new order's question when the last one closed under the person: who
        asks, and a button that shows the question. No field: keys still being typed for
        the old question land nowhere, and their Enter only opens the new one."""
        window, box = self._window(request["title"], request.get("present"))
        heading = Gtk.Label(xalign=0, wrap=True, max_width_chars=56)
        heading.set_markup(f"<b>{_markup(request['heading'])}</b>")
        box.pack_start(heading, False, False, 0)
        box.pack_start(_site_label(request["site"]), False, False, 0)
        box.pack_start(
            Gtk.Label(label=request["lead"], xalign=0, wrap=True, max_width_chars=56),
            False,
            False,
            0,
        )
        self._modal(
            request,
            answer,
            window,
            box,
            lambda: {"ok": True},
            window,
            present=request.get("present") or {},
        )
        # Only Enter (the default: show the question), Escape or a click answer: a focused
        # button would take a space from the old password and answer for the person.
        pending: list[Gtk.Widget] = [box]
        while pending:
            widget = pending.pop()
            if isinstance(widget, Gtk.Button):
                widget.set_can_focus(False)
            elif isinstance(widget, Gtk.Container):
                pending.extend(widget.get_children())
        window.set_focus(None)

    def _notice(self, request: dict[str, Any], answer: Answer) -> None:
        window, box = self._window(request["title"])
        heading = Gtk.Label(xalign=0, wrap=True)
        code = f"  <span alpha='60%'>{request['code']}</span>" if request.get("code") else ""
        heading.set_markup(f"<b>{_markup(request['title'])}</b>{code}")
        box.pack_start(heading, False, False, 0)
        box.pack_start(
            Gtk.Label(label=request["body"], xalign=0, wrap=True, max_width_chars=60),
            False,
            False,
            0,
        )
        action = request.get("action")
        if request.get("link"):
            box.pack_start(
                Gtk.Label(label=request["link"], xalign=0, selectable=True), False, False, 0
            )
        ok, close = self._buttons(
            box,
            action["label"] if action else request["ok"],
            request.get("close") if action else None,
        )

        def done(*_: object) -> bool:
            window.destroy()
            return True

        def act(*_: object) -> bool:
            if action is not None:
                if action["id"] == "openLink" and request.get("link"):
                    # the person's default browser, through GIO (xdg-open's mechanism)
                    Gtk.show_uri_on_window(window, request["link"], Gtk.get_current_event_time())
                self._send({"event": "action", "action": action["id"]})
            return done()

        ok.connect("clicked", act)
        if close is not None:
            close.connect("clicked", done)
        window.connect("key-press-event", self._escape(lambda: done()))
        window.set_default(ok)
        window.show_all()
        window.present_with_time(Gtk.get_current_event_time())
        ok.grab_focus()
        answer({"done": True})  # a notice does not wait to be dismissed

    def _secrets(self, request: dict[str, Any], answer: Answer) -> None:
        """Hidden fields in a row (current, new, repeat): a password or PIN change."""
        window, box = self._window(request["title"], request.get("present"))
        heading = Gtk.Label(xalign=0, wrap=True, max_width_chars=56)
        heading.set_markup(f"<b>{_markup(request['heading'])}</b>")
        box.pack_start(heading, False, False, 0)
        if request.get("problem"):
            box.pack_start(_problem_label(request["problem"]), False, False, 0)
        if request.get("note"):
            box.pack_start(
                Gtk.Label(label=request["note"], xalign=0, wrap=True, max_width_chars=56),
                False,
                False,
                0,
            )
        entries = []
        for field in request["fields"]:
            text, visible = (field[0], True) if isinstance(field, list) else (field, False)
            entries.append(_field(box, text, visible=visible))

        def result() -> dict[str, Any] | None:
            empty = next((e for e in entries if not e.get_text()), None)
            if empty is not None:  # Enter in an earlier field moves on, as Tab would
                empty.grab_focus()
                return None
            return {"values": [e.get_text() for e in entries]}

        self._modal(
            request, answer, window, box, result, entries[0], present=request.get("present") or {}
        )

    def _manager(self, request: dict[str, Any], answer: Answer) -> None:
        """My BankIDs: one row per BankID with what can be done with it."""
        old = self._windows.pop("manager", None)
        if old is not None:
            old[0].destroy()
        window, box = self._window(request["title"])
        first: Gtk.Widget | None = None
        for row in request["rows"]:
            frame = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
            frame.pack_start(
                Gtk.Label(label=row["text"], xalign=0, wrap=True, max_width_chars=60),
                False,
                False,
                0,
            )
            buttons = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
            for button in row["buttons"]:
                widget = Gtk.Button.new_with_label(button["label"])
                widget.connect(
                    "clicked",
                    lambda _w, item=button["id"]: self._send({"event": "manager", "item": item}),
                )
                buttons.pack_start(widget, False, False, 0)
                first = first or widget
            frame.pack_start(buttons, False, False, 0)
            box.pack_start(frame, False, False, 0)
            box.pack_start(Gtk.Separator(), False, False, 0)
        close, _ = self._buttons(box, request["close"], None)

        def done(*_: object) -> bool:
            self._windows.pop("manager", None)
            window.destroy()
            return True

        close.connect("clicked", done)
        window.connect("delete-event", done)
        window.connect("key-press-event", self._escape(lambda: done()))
        self._windows["manager"] = (window, lambda: None)
        window.show_all()
        window.present_with_time(Gtk.get_current_event_time())
        (first or close).grab_focus()
        answer({"done": True})

    def _modal(
        self,
        request: dict[str, Any],
        answer: Answer,
        window: Gtk.Window,
        box: Gtk.Box,
        result: Callable[[], dict[str, Any] | None],
        focus: Gtk.Widget,
        *,
        present: dict[str, Any] | None = None,
    ) -> Gtk.Button | None:
        """OK/Cancel, Escape and closing for a window that answers once; shows it and
        returns its Cancel button. ``result`` None: not yet (it moved the focus to what is
        missing). ``present`` (a dialog that waits for a password or PIN): shown and
        watched by _show, answering {"blocked": reason} when it cannot be used."""
        answered = False

        def finish(value: dict[str, Any]) -> None:
            nonlocal answered
            if not answered:
                answered = True
                self._windows.pop(request["ref"], None)
                answer(value)
                window.destroy()

        def on_ok(*_: object) -> None:
            value = result()
            if value is not None:
                finish(value)

        def on_delete(*_: object) -> bool:
            finish({"cancelled": True})
            return True

        ok, cancel = self._buttons(box, request["ok"], request["cancel"])
        ok.connect("clicked", on_ok)
        if cancel is not None:
            cancel.connect("clicked", lambda _b: finish({"cancelled": True}))
        window.connect("delete-event", on_delete)
        window.connect("key-press-event", self._escape(lambda: finish({"cancelled": True})))
        window.set_default(ok)
        old = self._windows.pop(request["ref"], None)
        if old is not None:
            old[1]()
        self._windows[request["ref"]] = (window, lambda: finish({"cancelled": True}))
        if present is not None:
            _show(window, focus, present, lambda reason: finish({"blocked": reason}))
            return cancel
        window.show_all()
        window.present_with_time(Gtk.get_current_event_time())
        focus.grab_focus()
        return cancel

    def _confirm(self, request: dict[str, Any], answer: Answer) -> None:
        """A question with a consequence (remove a BankID), and an optional check box."""
        window, box = self._window(request["title"])
        heading = Gtk.Label(xalign=0, wrap=True, max_width_chars=56)
        heading.set_markup(f"<b>{_markup(request['heading'])}</b>")
        box.pack_start(heading, False, False, 0)
        if request.get("body"):
            box.pack_start(
                Gtk.Label(label=request["body"], xalign=0, wrap=True, max_width_chars=56),
                False,
                False,
                0,
            )
        check = None
        if request.get("check"):
            check = Gtk.CheckButton.new_with_mnemonic(request["check"])
            box.pack_start(check, False, False, 0)
        cancel = self._modal(
            request,
            answer,
            window,
            box,
            lambda: {"ok": True, "checked": bool(check and check.get_active())},
            check or window,
        )
        if cancel is not None:  # the safe answer is the default: Enter alone removes nothing
            cancel.set_can_default(True)
            window.set_default(cancel)
            cancel.grab_focus()

    def _report(self, request: dict[str, Any], answer: Answer) -> None:
        """Diagnostics: the report, and a button that puts it on the clipboard."""
        window, box = self._window(request["title"])
        window.set_resizable(True)
        view = Gtk.TextView(editable=False, monospace=True, wrap_mode=Gtk.WrapMode.WORD_CHAR)
        view.get_buffer().set_text(request["text"])
        view.get_accessible().set_name(request["title"])
        scrolled = Gtk.ScrolledWindow(min_content_height=260, min_content_width=560)
        scrolled.add(view)
        box.pack_start(scrolled, True, True, 0)
        status = Gtk.Label(xalign=0, wrap=True, max_width_chars=70)
        box.pack_start(status, False, False, 0)

        def copy() -> None:
            clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
            clipboard.set_text(request["text"], -1)
            clipboard.store()
            status.set_text(request["copied"])
            self._send({"event": "copied", "ref": request["ref"]})

        row = Gtk.ButtonBox(orientation=Gtk.Orientation.HORIZONTAL, spacing=8)
        row.set_layout(Gtk.ButtonBoxStyle.END)
        copy_button = Gtk.Button.new_with_mnemonic(request["copy"])
        copy_button.connect("clicked", lambda _b: copy())
        close = Gtk.Button.new_with_mnemonic(request["close"])
        row.add(copy_button)
        row.add(close)
        box.pack_end(row, False, False, 0)

        def done(*_: object) -> bool:
            self._windows.pop(request["ref"], None)
            window.destroy()
            return True

        close.connect("clicked", done)
        window.connect("delete-event", done)
        window.connect("key-press-event", self._escape(lambda: done()))
        self._windows[request["ref"]] = (window, lambda: None)
        window.show_all()
        window.present_with_time(Gtk.get_current_event_time())
        copy_button.grab_focus()
        answer({"done": True})

    def _settings(self, request: dict[str, Any], answer: Answer) -> None:
        """Settings in tabs: general (language), network (proxy), websites (allowed and
        blocked), updates (what this agent follows), advanced (dialog methods)."""
        window, box = self._window(request["title"])
        labels, values = request["labels"], request["values"]
        if request.get("problem"):
            box.pack_start(_problem_label(request["problem"]), False, False, 0)
        tabs = Gtk.Notebook()
        box.pack_start(tabs, True, True, 0)
        fields: dict[str, Gtk.Widget] = {}

        def page(title: str) -> Gtk.Box:
            inner = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
            inner.set_border_width(12)
            tabs.append_page(inner, Gtk.Label(label=title))
            return inner

        general = page(request["tabs"]["general"])
        language_label = Gtk.Label.new_with_mnemonic(labels["language"])
        language_label.set_xalign(0)
        language = Gtk.ComboBoxText()
        for ident, text in request["languages"]:
            language.append(ident, text)
        language.set_active_id(values["language"])
        language_label.set_mnemonic_widget(language)
        language.get_accessible().set_name(labels["language"].replace("_", ""))
        general.pack_start(language_label, False, False, 0)
        general.pack_start(language, False, False, 0)
        fields["language"] = language

        network = page(request["tabs"]["network"])
        modes: dict[str, Gtk.RadioButton] = {}
        group = None
        for mode in ("none", "system", "manual"):
            radio = Gtk.RadioButton.new_with_mnemonic_from_widget(group, labels[f"proxy_{mode}"])
            group = group or radio
            modes[mode] = radio
            network.pack_start(radio, False, False, 0)
        modes[values["proxy_mode"]].set_active(True)
        manual = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        manual.set_margin_start(24)
        url = _field(manual, labels["proxy_url"], visible=True)
        user = _field(manual, labels["proxy_user"], visible=True)
        password = _field(manual, labels["proxy_password"], visible=False)
        url.set_text(values["proxy_url"])
        user.set_text(values["proxy_user"])
        manual.pack_start(
            Gtk.Label(label=labels["proxy_password_note"], xalign=0, wrap=True, max_width_chars=56),
            False,
            False,
            0,
        )
        network.pack_start(manual, False, False, 0)
        fields.update(proxy_url=url, proxy_user=user, proxy_password=password)

        def manual_on(*_: object) -> None:
            manual.set_sensitive(modes["manual"].get_active())

        modes["manual"].connect("toggled", manual_on)
        manual_on()

        sites = page(request["tabs"]["sites"])
        texts: dict[str, Gtk.TextView] = {}
        for key in ("allow", "block"):
            label = Gtk.Label.new_with_mnemonic(labels[key])
            label.set_xalign(0)
            label.set_line_wrap(True)
            view = Gtk.TextView(accepts_tab=False)
            view.get_buffer().set_text(values[key])
            view.get_accessible().set_name(labels[key].replace("_", ""))
            label.set_mnemonic_widget(view)
            scrolled = Gtk.ScrolledWindow(min_content_height=80, min_content_width=420)
            scrolled.set_shadow_type(Gtk.ShadowType.IN)
            scrolled.add(view)
            sites.pack_start(label, False, False, 0)
            sites.pack_start(scrolled, True, True, 0)
            texts[key] = view
            fields[key] = view

        updates = page(request["tabs"]["updates"])
        info = Gtk.Label(
            label=request["update_info"], xalign=0, wrap=True, selectable=True, max_width_chars=60
        )
        updates.pack_start(info, False, False, 0)

        advanced = page(request["tabs"]["advanced"])
        advanced.pack_start(
            Gtk.Label(label=labels["advanced_note"], xalign=0, wrap=True, max_width_chars=56),
            False,
            False,
            0,
        )
        checks = {}
        for key in ("raise_dialogs", "plain_window"):
            check = Gtk.CheckButton.new_with_mnemonic(labels[key])
            check.set_active(bool(values[key]))
            advanced.pack_start(check, False, False, 0)
            checks[key] = check

        def text_of(view: Gtk.TextView) -> str:
            buffer = view.get_buffer()
            return str(buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False))

        def result() -> dict[str, Any]:
            return {
                "values": {
                    "language": language.get_active_id() or "",
                    "proxy_mode": next(m for m, r in modes.items() if r.get_active()),
                    "proxy_url": url.get_text(),
                    "proxy_user": user.get_text(),
                    "proxy_password": password.get_text(),
                    "allow": text_of(texts["allow"]),
                    "block": text_of(texts["block"]),
                    **{k: c.get_active() for k, c in checks.items()},
                }
            }

        self._modal(request, answer, window, box, result, language)
        wrong = request.get("focus")  # asked again: the tab and field that were wrong
        if wrong in fields:
            tabs.set_current_page(
                {
                    "language": 0,
                    "proxy_url": 1,
                    "proxy_user": 1,
                    "proxy_password": 1,
                    "allow": 2,
                    "block": 2,
                }[wrong]
            )
            fields[wrong].grab_focus()

    # -- the tray ------------------------------------------------------------------------------

    def _notify(self, request: dict[str, Any], answer: Answer) -> None:
        """A desktop notification (org.freedesktop.Notifications), asked for directly:
        pystray's own reports a missing notification service inside GTK's loop, where
        nobody can answer for it."""

        def sent(bus: Gio.DBusConnection, result: Gio.AsyncResult) -> None:
            try:
                bus.call_finish(result)
            except GLib.Error as exc:
                answer({"done": False, "error": exc.message})
                return
            answer({"done": True})

        try:
            bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        except GLib.Error as exc:
            answer({"done": False, "error": exc.message})
            return
        urgency = GLib.Variant("y", 2 if request.get("urgent") else 1)
        bus.call(
            "org.freedesktop.Notifications",
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "Notify",
            GLib.Variant(
                "(susssasa{sv}i)",
                (
                    "eid-agent",
                    0,
                    "",
                    request["title"],
                    _markup(request["body"]),
                    [],
                    {"urgency": urgency},
                    -1,
                ),
            ),
            GLib.VariantType("(u)"),
            Gio.DBusCallFlags.NONE,
            5000,
            None,
            sent,
        )

    def _tray(self, request: dict[str, Any], answer: Answer) -> None:
        try:
            import pystray  # the only importer; it needs a session bus for notifications

            def chosen(item_id: str) -> Callable[..., None]:
                return lambda _icon, _item: self._send({"event": "menu", "item": item_id})

            menu = pystray.Menu(
                *(
                    pystray.MenuItem(i["label"], chosen(i["id"]), enabled=i.get("enabled", True))
                    for i in request["items"]
                )
            )
            image = _tray_image(request["state"])
            if self._icon is None:
                self._icon = pystray.Icon("eid-agent", image, request["tooltip"], menu=menu)
                self._icon.run_detached()
                self._icon.visible = True
            else:
                self._icon.icon = image
                self._icon.title = request["tooltip"]
                self._icon.menu = menu
                self._icon.update_menu()
        except Exception as exc:  # no session bus, no tray host: dialogs still work
            answer({"done": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        answer({"done": True})

    @staticmethod
    def _escape(action: Callable[[], object]) -> Callable[..., bool]:
        def on_key(_widget: Gtk.Widget, event: Any) -> bool:
            if event.keyval == 0xFF1B:  # Escape
                action()
                return True
            return False

        return on_key


def main() -> int:
    if not Gtk.init_check(sys.argv)[0]:
        sys.stderr.write("eid-agent ui: no display\n")
        return 3
    Helper()
    Helper._send({"id": 0, "ready": True})
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

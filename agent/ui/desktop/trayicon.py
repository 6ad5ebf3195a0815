"""The tray icon's picture, drawn without a toolkit: ARGB32 pixels (network byte order,
as a StatusNotifierItem's ``IconPixmap`` carries them) of the same badge the dialog
helper draws with Pillow — a disc in the state's colour with a key-hole, a ring when
busy, a bar when something needs the person (so the state shows not by colour alone).
Pure; each state's picture is drawn once."""

from __future__ import annotations

import functools
import math

__all__ = ["COLOURS", "pixmap"]

COLOURS = {
    "ready": (0, 128, 72),  # green: ready
    "busy": (24, 96, 200),  # blue: an identification or signing in progress
    "update": (230, 140, 0),  # orange: an update is required
    "problem": (190, 0, 32),  # red: something needs the person
}
_DESIGN = 64  # the shapes are given on a 64-pixel square, as the helper's
_SAMPLES = 3  # per pixel and axis: edges are blended, not jagged


def _inside_keyhole(x: float, y: float) -> bool:
    if (x - 32) ** 2 + (y - 22) ** 2 <= 8**2:
        return True
    if not 26 <= y <= 50:
        return False
    half = 4 + (y - 26) * (4 / 24)  # 28..36 at the top, 24..40 at the bottom
    return abs(x - 32) <= half


def _white(state: str, x: float, y: float) -> bool:
    if _inside_keyhole(x, y):
        return True
    if state == "busy" and 23 <= math.hypot(x - 32, y - 32) <= 26:
        return True
    return state in ("problem", "update") and 8 <= x <= 56 and 54 <= y <= 60


def _coverage(state: str, px: int, py: int, scale: float) -> tuple[float, float]:
    """(part of the pixel drawn, part of it white) on the design square: the disc, and
    the bar, which reaches past the disc's edge as the helper's does."""
    disc = white = 0
    step = 1 / _SAMPLES
    for i in range(_SAMPLES):
        for j in range(_SAMPLES):
            x = (px + (i + 0.5) * step - 0.5) * scale + 0.5 * (scale - 1)
            y = (py + (j + 0.5) * step - 0.5) * scale + 0.5 * (scale - 1)
            inside, bright = math.hypot(x - 32, y - 32) <= 30, _white(state, x, y)
            if inside or (bright and not _inside_keyhole(x, y)):
                disc += 1
                white += bright
    whole = _SAMPLES * _SAMPLES
    return disc / whole, white / whole


@functools.lru_cache(maxsize=16)
def pixmap(state: str, size: int = 32) -> bytes:
    """``size`` × ``size`` ARGB32 pixels, row by row, for ``state`` (an unknown state is
    drawn as ``problem``)."""
    red, green, blue = COLOURS.get(state, COLOURS["problem"])
    scale = _DESIGN / size
    out = bytearray()
    for py in range(size):
        for px in range(size):
            disc, white = _coverage(state, px, py, scale)
            if disc == 0:
                out += b"\x00\x00\x00\x00"
                continue
            share = white / disc  # of the visible part, how much is white
            out += bytes(
                (
                    round(255 * disc),
                    round(red + (255 - red) * share),
                    round(green + (255 - green) * share),
                    round(blue + (255 - blue) * share),
                )
            )
    return bytes(out)

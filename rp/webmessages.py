"""What a web page tells the person for each bridge status and error: catalogue codes,
and the table embedded in ``rp/static/eid-agent.js`` (generated from the catalogue so the
page and the agent never disagree; ``python -m rp.webmessages --write`` regenerates it,
and a test fails when it is stale)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from eidcore.messages import Language, MessageCode, catalogue

JS_FILE = Path(__file__).parent / "static" / "eid-agent.js"

# (hintCode, order type) → message; None means "either type".
HINTS: dict[str, dict[str, MessageCode]] = {
    # The bridge answered the start, so the agent runs and is about to ask: telling the
    # person to start it (10048) while it asks for the password misleads them.
    "outstandingTransaction": {
        "auth": MessageCode.IDENTIFY_IN_THE_AGENT,
        "sign": MessageCode.SIGN_IN_THE_AGENT,
    },
    # In this agent noClient means "waiting for a card": say what the agent says.
    "noClient": {"auth": MessageCode.BANKID_MISSING, "sign": MessageCode.BANKID_MISSING},
    "started": {"auth": MessageCode.IDENTIFY_IN_THE_AGENT, "sign": MessageCode.SIGN_IN_THE_AGENT},
    "userSign": {"auth": MessageCode.IDENTIFY_IN_THE_AGENT, "sign": MessageCode.SIGN_IN_THE_AGENT},
    "expiredTransaction": {"auth": MessageCode.TIMED_OUT, "sign": MessageCode.TIMED_OUT},
    "userCancel": {"auth": MessageCode.USER_CANCELLED, "sign": MessageCode.USER_CANCELLED},
    "cancelled": {"auth": MessageCode.CANCELLED_BY_SITE, "sign": MessageCode.CANCELLED_BY_SITE},
    "certificateErr": {
        "auth": MessageCode.BANKID_NOT_USABLE,
        "sign": MessageCode.BANKID_NOT_USABLE,
    },
    "startFailed": {"auth": MessageCode.TECHNICAL_ERROR, "sign": MessageCode.TECHNICAL_ERROR},
    # through the relay: the person's agent refuses orders until updated (and said why)
    "updateRequired": {"auth": MessageCode.UPDATE_REQUIRED, "sign": MessageCode.UPDATE_REQUIRED},
    # through the relay's v6.0 API: the site asked for what no agent can do (mrtd, class2)
    "notSupportedByUserApp": {
        "auth": MessageCode.NOT_SUPPORTED,
        "sign": MessageCode.NOT_SUPPORTED,
    },
}

# Through the relay (the page opened an eid-agent:// link) two hints mean something else:
# the agent has not fetched the order yet (it may not be opening at all), and startFailed
# is mostly a link no agent picked up within its 30 s.
RELAY_HINTS: dict[str, dict[str, MessageCode]] = {
    "outstandingTransaction": {
        "auth": MessageCode.OPENING_THE_AGENT,
        "sign": MessageCode.OPENING_THE_AGENT,
    },
    "startFailed": {
        "auth": MessageCode.AGENT_DID_NOT_START,
        "sign": MessageCode.AGENT_DID_NOT_START,
    },
}

ERRORS: dict[str, MessageCode] = {
    "unreachable": MessageCode.AGENT_NOT_REACHABLE,  # fetch failed: not running, or LNA
    "alreadyInProgress": MessageCode.ALREADY_IN_PROGRESS,
    "updateRequired": MessageCode.UPDATE_REQUIRED,
    "rateLimited": MessageCode.TOO_MANY_ATTEMPTS,
    "forbiddenOrigin": MessageCode.SITE_NOT_ALLOWED,
    "forbiddenUser": MessageCode.AGENT_OF_ANOTHER_USER,
    "invalidParameters": MessageCode.INTERNAL_ERROR,
    "forbiddenHost": MessageCode.INTERNAL_ERROR,
    "notFound": MessageCode.INTERNAL_ERROR,
    "requestTooLarge": MessageCode.INTERNAL_ERROR,
    "internalError": MessageCode.INTERNAL_ERROR,
}

# Messages a website shows about its own checks (seed 003's login page).
SITE = {
    "personalNumberFormat": MessageCode.PERSONAL_NUMBER_FORMAT,
    "personalNumberInvalid": MessageCode.PERSONAL_NUMBER_INVALID,
    "verificationFailed": MessageCode.TECHNICAL_ERROR,
    "relayUnavailable": MessageCode.TECHNICAL_ERROR,  # the site's relay did not answer it
}


def table() -> dict[str, object]:
    codes = sorted(
        {
            c
            for hints in (HINTS, RELAY_HINTS)
            for by_type in hints.values()
            for c in by_type.values()
        }
        | set(ERRORS.values())
        | set(SITE.values())
    )
    cat = catalogue()
    messages = {}
    for code in codes:
        messages[str(int(code))] = {
            lang.value: {
                "title": cat.render(code, lang).title,
                "body": cat.render(code, lang).body,
            }
            for lang in Language
        }
    return {
        "hints": {h: {t: int(c) for t, c in by_type.items()} for h, by_type in HINTS.items()},
        "relayHints": {
            h: {t: int(c) for t, c in by_type.items()} for h, by_type in RELAY_HINTS.items()
        },
        "errors": {e: int(c) for e, c in ERRORS.items()},
        "site": {s: int(c) for s, c in SITE.items()},
        "messages": messages,
    }


_MARKERS = re.compile(
    r"(/\* BEGIN GENERATED MESSAGES \*/\n).*?(\n\s*/\* END GENERATED MESSAGES \*/)", re.S
)


def rendered_js(source: str) -> str:
    body = "var TABLE = " + json.dumps(table(), ensure_ascii=False, indent=1, sort_keys=True) + ";"
    return _MARKERS.sub(lambda m: m.group(1) + body + m.group(2), source)


if __name__ == "__main__":
    current = JS_FILE.read_text("utf-8")
    fresh = rendered_js(current)
    if "--write" in sys.argv:
        JS_FILE.write_text(fresh, "utf-8")
    elif fresh != current:
        print("rp/static/eid-agent.js is stale: run python -m rp.webmessages --write")
        raise SystemExit(1)

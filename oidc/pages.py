"""The provider's pages, in Swedish and English from the message catalogue: the login
page (what the client asks, a button, then the "Open the eID agent" link and the status
the relay reports) and the error page. Plain HTML, escaped; one small script of the
provider's own polls the status (the page also works without it: it refreshes itself).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from eidcore.messages import Language, MessageCode, Term, catalogue

__all__ = ["HEADERS", "error_page", "language_for", "login_page", "status_text", "term_text"]

# No framing (clickjacking), no referrer (the page URL carries the login's id), nothing
# but the provider's own script and style, no caching of a page about one login.
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def language_for(ui_locales: tuple[str, ...], accept: str) -> Language:
    """``ui_locales`` first (OIDC), then the browser's Accept-Language; English else."""
    wanted = list(ui_locales) + [p.split(";")[0].strip() for p in accept.split(",")[:10]]
    for tag in wanted:
        base = tag.lower().split("-")[0]
        if base in ("sv", "en"):
            return Language(base)
    return Language.EN


def _t(term: Term, language: Language, **values: object) -> str:
    return html.escape(catalogue().term(term, language).format(**values))


def status_text(code: MessageCode, language: Language) -> tuple[str, str]:
    text = catalogue().render(code, language)
    return text.title, text.body


def term_text(title: Term, body: Term, language: Language) -> tuple[str, str]:
    terms = catalogue()
    return terms.term(title, language), terms.term(body, language)


def _frame(language: Language, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{language.value}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title><link rel="stylesheet" href="/static/login.css"></head>'
        f"<body><main>{body}</main></body></html>"
    )


def login_page(
    *,
    language: Language,
    client: str,
    login_id: str,
    sign_text: str | None,
    link: str | None,
    status: tuple[str, str] | None,
    finished: bool,
    hint: str | None = None,
) -> str:
    """Before the order: the question and a button. After it: the link and the status
    (``status`` from the catalogue), polled by ``/static/login.js``."""
    title = _t(Term.OIDC_TITLE_SIGN if sign_text is not None else Term.OIDC_TITLE, language)
    lead_term = Term.OIDC_SIGN_LEAD if sign_text is not None else Term.OIDC_LOGIN_LEAD
    parts = [f"<h1>{title}</h1>", f"<p>{_t(lead_term, language, client=client)}</p>"]
    if sign_text is not None:
        parts.append(f'<pre class="signed" id="signed">{html.escape(sign_text)}</pre>')
    ident = html.escape(login_id)
    if link is None and not finished:
        start = Term.OIDC_START_SIGN if sign_text is not None else Term.OIDC_START
        form = '<form method="post" action="/login/start">'
        form += f'<input type="hidden" name="l" value="{ident}">'
        if hint is not None:  # the person confirms the client's guess, or does not
            form += (
                f"<p>{_t(Term.OIDC_HINT, language, client=client, person=hint)}</p>"
                '<button type="submit" id="start-hint" name="hint" value="yes">'
                f"{_t(Term.OIDC_START_HINT, language, person=hint)}</button> "
                f'<button type="submit" id="start" class="secondary">{_t(start, language)}'
                "</button></form>"
            )
        else:
            form += f'<button type="submit" id="start">{_t(start, language)}</button></form>'
        parts.append(form)
    elif link is not None and not finished:
        parts.append(
            f'<p><a class="button" id="open" href="{html.escape(link)}">'
            f"{_t(Term.OIDC_OPEN, language)}</a></p>"
        )
    if status is not None:
        parts.append(
            f'<div id="status" role="status" aria-live="polite"><strong>'
            f"{html.escape(status[0])}</strong><p>{html.escape(status[1])}</p></div>"
        )
    if not finished:
        parts.append(
            '<form method="post" action="/login/cancel">'
            f'<input type="hidden" name="l" value="{ident}">'
            f'<button type="submit" id="cancel" class="secondary">'
            f"{_t(Term.OIDC_CANCEL, language)}</button></form>"
        )
    else:
        parts.append(
            f'<p><a id="back" href="/login/abort?l={ident}">'
            f"{_t(Term.OIDC_BACK, language, client=client)}</a></p>"
        )
    if link is not None and not finished:
        parts.append(
            f'<div id="poll" data-login="{ident}" hidden></div>'
            '<script src="/static/login.js"></script>'
            '<noscript><meta http-equiv="refresh" content="3"></noscript>'
        )
    return _frame(language, title, "".join(parts))


def error_page(language: Language, term: Term, **values: object) -> str:
    title = _t(Term.OIDC_ERROR_TITLE, language)
    return _frame(language, title, f"<h1>{title}</h1><p>{_t(term, language, **values)}</p>")

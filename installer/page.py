"""The install page: where people are sent to install by hand (the update fall-back's
"install page", and the first install). Static HTML in Swedish and English with no
external resources, next to the update repository (``<repository>/install/``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from pathlib import Path

__all__ = ["write_install_page"]

_PAGE = """<!doctype html>
<html lang="sv">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>eid-agent {version}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 44em; margin: 2em auto; padding: 0 1em; }}
code, pre {{ background: #f3f3f3; padding: 0.1em 0.3em; }}
pre {{ padding: 0.6em; overflow-x: auto; }}
section {{ border-top: 1px solid #ccc; margin-top: 2em; }}
.sum {{ word-break: break-all; }}
</style>
</head>
<body>
<h1>eid-agent {version}</h1>
<p><a id="installer" href="{name}">{name}</a> ({size})<br>
SHA-256: <code class="sum" id="sha256">{sha256}</code><br>
<small>{published}</small></p>
{deb}
<section lang="sv">
<h2>Installera eller reparera</h2>
<ol>
<li>Ladda ner <a href="{name}">{name}</a>.</li>
<li>Kontrollera filen i en terminal: <code>sha256sum {name}</code> ska visa summan ovan.</li>
<li>Kör den som dig själv (inte som root): <pre>sh {name}</pre>
Programmet installeras för din användare, läggs i menyn och startar vid inloggning.
Dina BankID och inställningar finns kvar om du installerar om.</li>
</ol>
<p>Det behövs Python 3.11 (Debian 12: <code>sudo apt install python3</code>) och för BankID
på kort tjänsten pcscd (<code>sudo apt install pcscd</code>).</p>
{deb_sv}<p>Avinstallera: <code>eid-agent uninstall</code>. Dina BankID tas bara bort om du lägger
till <code>--delete-credentials</code>.</p>
</section>

<section lang="en">
<h2>Install or repair</h2>
<ol>
<li>Download <a href="{name}">{name}</a>.</li>
<li>Check it in a terminal: <code>sha256sum {name}</code> must print the sum above.</li>
<li>Run it as yourself (not as root): <pre>sh {name}</pre>
The agent is installed for your user, added to the menu and started at login. Your
BankIDs and settings stay when you install again.</li>
</ol>
<p>Python 3.11 is needed (Debian 12: <code>sudo apt install python3</code>), and for BankID
on card the pcscd service (<code>sudo apt install pcscd</code>).</p>
{deb_en}<p>Uninstall: <code>eid-agent uninstall</code>. Your BankIDs are only deleted if you add
<code>--delete-credentials</code>.</p>
</section>
</body>
</html>
"""


_DEB = """<p><a id="deb" href="{name}">{name}</a> ({size})<br>
SHA-256: <code class="sum" id="deb-sha256">{sha256}</code></p>
"""
_DEB_SV = """<p>Administratörer på Debian och Ubuntu kan i stället installera paketet åt alla
användare: <code>sudo apt install ./{name}</code>. Var och en får då sitt eget exemplar när
de loggar in nästa gång.</p>
"""
_DEB_EN = """<p>Administrators on Debian and Ubuntu can install the package for every user instead:
<code>sudo apt install ./{name}</code>. Each person then gets their own copy at their next
login.</p>
"""


def _sum(path: Path) -> tuple[str, str]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), f"{path.stat().st_size / 1e6:.1f} MB"


def write_install_page(
    folder: Path, installer: Path, version: str, now: dt.datetime, deb: Path | None = None
) -> Path:
    """Write ``index.html`` and ``SHA256SUMS`` for ``installer`` (and the Debian package,
    if given), both already in ``folder``; returns the page's path."""
    digest, size = _sum(installer)
    sums = f"{digest}  {installer.name}\n"
    extra = {"deb": "", "deb_sv": "", "deb_en": ""}
    if deb is not None:
        deb_digest, deb_size = _sum(deb)
        sums += f"{deb_digest}  {deb.name}\n"
        name = html.escape(deb.name)
        extra = {
            "deb": _DEB.format(name=name, size=deb_size, sha256=deb_digest),
            "deb_sv": _DEB_SV.format(name=name),
            "deb_en": _DEB_EN.format(name=name),
        }
    page = _PAGE.format(
        version=html.escape(version),
        name=html.escape(installer.name),
        sha256=digest,
        size=size,
        published=f"{now:%Y-%m-%d %H:%M} UTC",
        **extra,
    )
    for name, text in (("SHA256SUMS", sums), ("index.html", page)):
        temporary = folder / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o644)
        temporary.replace(folder / name)
    return folder / "index.html"

"""The licences site.yml may name (``license: {text: CC-BY-4.0, code: MIT}``), by SPDX id.

A small known list rather than SPDX's full one: each id needs a name to show and a page to link
to, and a misspelt id should be an error with a suggestion, not a dead link. Creative Commons
licences link to their deeds (the pages search engines and `rel="license"` readers recognise);
the others to their page on spdx.org, which exists for every SPDX id.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class License:
    spdx: str          # the SPDX identifier, e.g. CC-BY-4.0
    name: str          # as shown to a reader, e.g. CC BY 4.0
    url: str           # the licence's own page


def _cc(spdx: str, path: str, name: str) -> tuple[str, License]:
    return spdx, License(spdx, name, f"https://creativecommons.org/{path}/")


def _spdx(spdx: str, name: str | None = None) -> tuple[str, License]:
    return spdx, License(spdx, name or spdx, f"https://spdx.org/licenses/{spdx}.html")


KNOWN: dict[str, License] = dict([
    _cc("CC-BY-4.0", "licenses/by/4.0", "CC BY 4.0"),
    _cc("CC-BY-SA-4.0", "licenses/by-sa/4.0", "CC BY-SA 4.0"),
    _cc("CC-BY-ND-4.0", "licenses/by-nd/4.0", "CC BY-ND 4.0"),
    _cc("CC-BY-NC-4.0", "licenses/by-nc/4.0", "CC BY-NC 4.0"),
    _cc("CC-BY-NC-SA-4.0", "licenses/by-nc-sa/4.0", "CC BY-NC-SA 4.0"),
    _cc("CC-BY-NC-ND-4.0", "licenses/by-nc-nd/4.0", "CC BY-NC-ND 4.0"),
    _cc("CC0-1.0", "publicdomain/zero/1.0", "CC0 1.0"),
    _spdx("MIT"),
    _spdx("Apache-2.0", "Apache 2.0"),
    _spdx("BSD-2-Clause", "BSD 2-Clause"),
    _spdx("BSD-3-Clause", "BSD 3-Clause"),
    _spdx("0BSD"),
    _spdx("ISC"),
    _spdx("MPL-2.0", "MPL 2.0"),
    _spdx("GPL-2.0-only", "GPL 2.0"),
    _spdx("GPL-2.0-or-later", "GPL 2.0 or later"),
    _spdx("GPL-3.0-only", "GPL 3.0"),
    _spdx("GPL-3.0-or-later", "GPL 3.0 or later"),
    _spdx("LGPL-3.0-only", "LGPL 3.0"),
    _spdx("LGPL-3.0-or-later", "LGPL 3.0 or later"),
    _spdx("AGPL-3.0-only", "AGPL 3.0"),
    _spdx("AGPL-3.0-or-later", "AGPL 3.0 or later"),
    _spdx("Unlicense", "The Unlicense"),
])


@dataclass(frozen=True)
class Licenses:
    """The site's licences: one for the text (prose, figures), one for the code listings."""

    text: License | None = None
    code: License | None = None

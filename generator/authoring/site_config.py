"""The site's settings (content/site.yml) and the rules for text that goes into every output.

Standard library and PyYAML only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from ..core.errors import ConfigError, ContentError, unknown_key_error
from ..core.located import located
from ..core.oserror import os_hint, os_reason
from ..core.project import Project
from .licenses import KNOWN as KNOWN_LICENSES
from .licenses import Licenses
from .yamlio import load_yaml, yaml_hint, yaml_problem


@dataclass(frozen=True)
class SiteConfig:
    """Settings of the whole site, from content/site.yml."""

    title: str
    description: str
    author: str
    url: str = ""                 # absolute origin, e.g. https://user.github.io (no trailing slash)
    baseurl: str = ""             # path prefix the site is served under, e.g. /repo
    mathjax_url: str = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-mml-chtml.js"
    lang: str = "en"
    license: Licenses = Licenses()  # of the text and of the code, by SPDX id
    # The repository's web address (https://github.com/<owner>/<repo>): code listings link to
    # their source at the commit that built the page, and each post says how to reproduce it.
    repository: str = ""
    extra: dict = field(default_factory=dict)


# Characters no title, description or tag may hold: XML 1.0 cannot carry C0 controls at all (not
# even as references), HTML calls C1 controls parse errors, and lone surrogates have no UTF-8.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Line breaks and tabs become one space: XML normalises them to spaces inside attributes, HTML
# shows them as one, so only then does every output read back the same string.
_SPACES = re.compile("[ \t\r\n\u2028\u2029]+")


def plain_text(value: str, *, path: object, field: str) -> str:
    """A title, description or tag as one line of text, identical in every output format."""
    bad = _FORBIDDEN.search(value)
    if bad:
        raise ContentError(f"contains the control character U+{ord(bad.group()):04X}", path=path,
                           field=field, hint="remove it; feeds and web pages cannot carry it")
    return _SPACES.sub(" ", value).strip()



# https://<host>/<owner>/<repo> (GitLab groups nest deeper); no query, fragment or trailing '/'.
_REPOSITORY = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+){2,}$")
_BASEURL = re.compile(r"^(/[A-Za-z0-9._~!$'()*+,;=:@%-]+)*$")
_URL = re.compile(r"^https?://[^\s/\"'<>]+$")


def normalize_baseurl(value: str) -> str:
    """'' or '/a/b': leading slash, no trailing slash (so '{baseurl}/x' is always right)."""
    v = (value or "").strip()
    if v in ("", "/"):
        return ""
    v = "/" + v.strip("/")
    if not _BASEURL.match(v):
        raise ConfigError(f"baseurl {value!r} is not a URL path", field="baseurl",
                          hint="use a path such as /repo (letters, digits, - . _ ~)")
    return v


def normalize_repository(value: str) -> str:
    """'' (no repository) or its web address without a trailing '/' or '.git'; anything else
    is refused (a clone URL such as git@github.com:o/r.git cannot be linked to)."""
    v = value.strip().rstrip("/")
    if v.endswith(".git"):
        v = v[:-4]
    if v and not _REPOSITORY.match(v):
        raise ConfigError(f"{value!r} is not the web address of a repository",
                          field="repository",
                          hint="write it as https://github.com/<owner>/<repo>, or leave it out")
    return v


def _read_settings(project: Project) -> dict[str, Any]:
    path = project.site_yml
    if not path.is_file():
        raise ConfigError("missing site settings", path=path,
                          hint="create it with title, description, author and url")
    try:
        source = path.read_text(encoding="utf-8")
        data = load_yaml(source) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the site settings: {os_reason(exc)}", path=path,
                          hint=os_hint(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", path=path,
                          line=exc.object[:exc.start].count(b"\n") + 1,
                          hint="save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        text, line = yaml_problem(exc, source=source)
        raise ConfigError(text, path=path, line=line,
                          hint=yaml_hint(exc) or "fix the YAML on that line (quote values "
                          "that contain ': ' or start with a quote)") from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of settings", path=path)
    return data


def parse_licenses(raw: Any, *, path: object) -> Licenses:
    """``license: {text: CC-BY-4.0, code: MIT}``: each an SPDX id of the known list."""
    import difflib

    if raw is None:
        return Licenses()
    example = "write license: {text: CC-BY-4.0, code: MIT}"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"must be a mapping of the text's and the code's licences, got {raw!r}",
                          path=path, field="license", hint=example)
    for key in sorted(map(str, raw)):
        if key not in ("text", "code"):
            raise unknown_key_error(key, ("text", "code"), source=path, prefix="license.")
    found = {}
    for key in ("text", "code"):
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, str):
            raise ConfigError(f"must be an SPDX licence id, got {value!r}", path=path,
                              field=f"license.{key}", hint=example)
        if value not in KNOWN_LICENSES:
            same = [k for k in KNOWN_LICENSES if k.lower() == value.strip().lower()]
            close = same or difflib.get_close_matches(value, list(KNOWN_LICENSES), n=1)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"known ids: {', '.join(KNOWN_LICENSES)}")
            raise ConfigError(f"{value!r} is not an SPDX licence id this site knows", path=path,
                              field=f"license.{key}", hint=hint)
        found[key] = KNOWN_LICENSES[value]
    return Licenses(**found)


def kind_modules(project: Project) -> tuple[str, ...]:
    """The modules site.yml names under ``kinds:`` (a project's own experiment kinds). Without
    a site.yml there are none (commands that need the settings say it is missing)."""
    if not project.site_yml.is_file():
        return ()
    raw = _read_settings(project).get("kinds") or []
    if not (isinstance(raw, list) and all(isinstance(m, str) and m for m in raw)):
        raise ConfigError("must be a list of module names", path=project.site_yml,
                          field="kinds", hint="write kinds: [mypackage.mykind]")
    return tuple(raw)


def load_site_config(project: Project, baseurl: str | None = None) -> SiteConfig:
    path = project.site_yml
    data = _read_settings(project)
    names = [f.name for f in fields(SiteConfig)] + ["kinds"]
    for key in sorted(map(str, data)):
        if key not in names:
            raise unknown_key_error(key, names, source=path)
    for key in ("title", "description", "author", "url"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ConfigError("is required and must be a non-empty string", path=path, field=key,
                              hint=f"add a line such as '{key}: \"...\"' to site.yml")
    for key in ("baseurl", "mathjax_url", "lang", "repository"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"must be a string, got {data[key]!r}", path=path, field=key)
    url = data["url"].strip().rstrip("/")
    if not _URL.match(url):
        raise ConfigError(f"url {data['url']!r} must be an origin like https://user.github.io",
                          path=path, field="url", hint="no path: put the path in baseurl")
    try:
        base = normalize_baseurl(baseurl if baseurl is not None else data.get("baseurl", ""))
    except ConfigError as exc:
        raise located(exc, path=None if baseurl is not None else path,
                      field="--baseurl" if baseurl is not None else "baseurl") from None
    mathjax = data.get("mathjax_url", SiteConfig.mathjax_url)
    if not re.match(r"^(https://|/)[^\s\"'<>]+$", mathjax):
        raise ConfigError(f"mathjax_url {mathjax!r} must be an https:// URL or a root path",
                          path=path, field="mathjax_url")
    lang = data.get("lang", "en")
    if not re.match(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$", lang):
        raise ConfigError(f"lang {lang!r} is not a language tag", path=path, field="lang",
                          hint="use a tag such as en, de or pt-BR")
    try:
        repository = normalize_repository(data.get("repository", ""))
    except ConfigError as exc:
        raise located(exc, path=path, field="repository") from None
    extra = data.get("extra") or {}
    if not isinstance(extra, dict):
        raise ConfigError("must be a mapping", path=path, field="extra")
    licenses = parse_licenses(data.get("license"), path=path)
    text = {k: plain_text(data[k], path=path, field=k) for k in ("title", "description", "author")}
    return SiteConfig(title=text["title"], description=text["description"],
                      author=text["author"], url=url, baseurl=base, mathjax_url=mathjax,
                      lang=lang, license=licenses, repository=repository, extra=extra)

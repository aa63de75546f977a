"""The author's commands: new (start a post), list (what a post body can use), clean."""
from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import click

from . import common

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# The first entry of a BibTeX file that is a reference (not @string, @preamble or @comment).
_BIB_KEY = re.compile(r"@\s*(?!string\b|preamble\b|comment\b)[A-Za-z]+\s*[{(]\s*([^,\s{}()]+)\s*,",
                      re.I)
REFERENCES = "references.bib"


def first_citation_key(bib: Path) -> str | None:
    try:
        text = bib.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = _BIB_KEY.search(text)
    return m.group(1) if m else None


def _experiment_for_new_post(ctx) -> tuple[str, str, object]:
    """(name, front-matter settings, Declared) of the experiment a new post declares: the first
    one of the default kind the posts already declare, with the settings they give it (so the
    new post reuses its result and builds at once), else `main` with the defaults."""
    from ..authoring.posts import kinds_of, read_posts
    from ..kinds.base import DEFAULT_KIND, Declared

    for post in read_posts(ctx):
        for name, d in sorted(post.experiments.items()):
            if d.kind.name == DEFAULT_KIND and name not in post.data:
                raw = dict((post.meta.get("experiments") or {}).get(name) or {})
                raw.pop("kind", None)
                return name, _flow(raw), d
    kind = kinds_of(ctx).get(DEFAULT_KIND)
    return "main", "{}", Declared("main", kind, kind.defaults())


def _flow(mapping: dict) -> str:
    import yaml

    if not mapping:
        return "{}"
    return yaml.safe_dump(mapping, default_flow_style=True, sort_keys=False,
                          width=10_000).strip()


def _listing_for(kind) -> tuple[str, str]:
    if kind.example_listing:
        return kind.example_listing
    for module, names in kind.listings().items():
        return module, names[0]
    raise click.ClickException(f"the kind {kind.name!r} has no code to list")


@click.command()
@click.argument("slug")
@common.root_option
@click.option("--title", default=None, help="The post's title (default: made from the slug).")
@click.option("--date", "date", default=None, metavar="'YYYY-MM-DD HH:MM:SS +ZZZZ'",
              help="The post's date (default: now, in this machine's zone).")
def new(slug, root, title, date) -> None:
    """Start a post: content/posts/SLUG.md with front matter, one experiment, one figure, one
    listing (and a citation when content/references.bib exists), ready to build."""
    from ..authoring.site_config import load_site_config
    from ..core.errors import ConfigError, ContentError

    if not _SLUG.match(slug):
        raise ConfigError(f"slug {slug!r} cannot be a post's URL", field="SLUG",
                          hint="use lower-case letters, digits and -, e.g. my-first-post")
    ctx = common.context(root)
    project = ctx.project
    load_site_config(project)                   # a project to add to, with its settings
    path = project.posts / f"{slug}.md"
    if path.exists():
        raise ContentError("a post with this slug already exists", path=path,
                           hint="pick another slug, or edit that file")
    name, settings, d = _experiment_for_new_post(ctx)
    figure = next(iter(d.kind.figures(d.settings)), None)
    module, definition = _listing_for(d.kind)
    when = date or dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    title = title or slug.replace("-", " ").capitalize()
    key = first_citation_key(project.content / REFERENCES)
    cite = f" [@{key}]" if key else ""
    figure_block = (f'{{% call figure("{figure}", experiment="{name}") %}}\n'
                    f"What the figure shows, in a sentence or two.\n{{% endcall %}}\n\n"
                    if figure else "")
    text = (f"---\ntitle: {_flow_title(title)}\ndate: {when}\n"
            f'description: "One line for the index, the feed and the meta tags."\n'
            f"experiments:\n  {name}: {settings}\n---\n"
            f"Write the introduction here. Every number comes from the experiment "
            f"`{name}`: it trained for {{{{ {name}.metrics.steps }}}} steps at rank "
            f"{{{{ {name}.config.rank }}}}{cite}.\n\n"
            f"## The code\n\n{{{{ listing(\"{module}\", \"{definition}\") }}}}\n\n"
            f"## The result\n\n{figure_block}"
            f"`lora-site list` shows every metric, figure and listing a post can use.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(text)
    used = [f"experiment {name}"] + ([f"figure {figure}"] if figure else []) + \
        [f"listing {module}.{definition}"] + ([f"citation @{key}"] if key else [])
    click.echo(f"created {path.relative_to(project.root)} ({', '.join(used)}); "
               "`lora-site serve` previews it")


def _flow_title(title: str) -> str:
    import json

    return json.dumps(title, ensure_ascii=False)     # a YAML double-quoted string


@click.command(name="list")
@common.root_option
def list_command(root) -> None:
    """Show the posts, the experiments they declare, and what a post body can use of each:
    settings, metrics, figures and code listings."""
    from ..authoring.post_info import post_info
    from ..authoring.posts import collect_experiments, read_posts
    from ..authoring.site_config import load_site_config
    from ..core.errors import LoraSiteError
    from ..stages.run import run_inputs, store_of

    ctx = common.context(root)
    site = load_site_config(ctx.project)
    posts = read_posts(ctx)
    infos = sorted((post_info(p, site) for p in posts), key=lambda i: (i.date, i.slug),
                   reverse=True)
    out = [f"posts ({len(infos)}), newest first:"]
    width = max((len(i.slug) for i in infos), default=0)
    for info in infos:
        uses = [f"experiments: {', '.join(sorted(n for n in info.post.experiments if n not in info.post.data))}"] \
            if set(info.post.experiments) - set(info.post.data) else []
        uses += [f"data: {', '.join(info.post.data)}"] if info.post.data else []
        out.append(f"  {info.slug:<{width}}  {info.date:%Y-%m-%d}  {info.title}")
        out.append(f"  {'':<{width}}  {info.post.path.relative_to(ctx.project.root)}"
                   + (f"; {'; '.join(uses)}" if uses else ""))
    declared = collect_experiments(posts)
    out.append("")
    out.append(f"experiments ({len(declared)}):")
    store = store_of(ctx)
    for name, d in declared.items():
        by = sorted(p.slug for p in posts if name in p.experiments)
        out.append(f"  {name} (kind {d.kind.name}): {d.kind.description or 'no description'}")
        out.append(f"      declared by: {', '.join(by)}")
        state = store.check(name, d.kind, run_inputs(ctx, d))
        folder = store.folder(name)
        loaded = None
        if state.fresh:
            status = "frozen and fresh (a build reuses it)"
        elif state.reasons == ["no frozen results"]:
            status = "none yet (a build computes it)"
        else:
            status = f"stale, a build recomputes it ({'; '.join(state.reasons)})"
        try:
            if any((folder / f).is_file() for f in d.kind.result_files):
                loaded = d.kind.load(folder, name)
        except LoraSiteError as exc:
            status += f"; unreadable: {exc.format_message()}"
        out.append(f"      result: {status}")
        sections = d.kind.listing(loaded) if loaded is not None else {}
        sections.setdefault("figures", list(d.kind.figures(d.settings)))
        for section, names in sections.items():
            out.extend(_wrapped(f"{section}: ", names))
        for module, names in d.kind.listings().items():
            out.extend(_wrapped(f"listing('{module}', ...): ", names))
        if loaded is None:
            out.append("      (metrics appear once a build has computed the result)")
    click.echo("\n".join(out))


def _wrapped(head: str, names: list[str]) -> list[str]:
    return textwrap.wrap(", ".join(names) or "none", width=100, initial_indent="      " + head,
                         subsequent_indent="        ", break_on_hyphens=False)


@click.command()
@common.root_option
@common.quiet_option
def clean(root, quiet) -> None:
    """Remove what builds make and can make again: site/ and .cache/ (never content/_freeze,
    which holds the committed results)."""
    import shutil

    from ..core.errors import BuildError
    from ..core.project import Project
    from ..publish.lock import build_lock

    project = Project(Path(root).resolve()) if root else Project.find()
    site = project.site
    targets = [site, project.cache.parent] + sorted(
        p for p in site.parent.glob(f".{site.name}.*-*")
        if p.name.startswith((f".{site.name}.build-", f".{site.name}.old-")))
    if not any(t.exists() or t.is_symlink() for t in targets):
        if not quiet:
            click.echo(f"nothing to clean in {project.root}")
        return
    removed = []
    # The build's lock: a build in progress is never pulled from under its feet.
    with build_lock(project):
        for target in targets:
            if not (target.exists() or target.is_symlink()):
                continue
            if project.freeze.resolve().is_relative_to(target.resolve()) and not \
                    target.is_symlink():
                raise BuildError("refusing to remove a folder that holds content/_freeze",
                                 path=target)
            try:
                if target.is_symlink() or not target.is_dir():
                    target.unlink()
                else:
                    shutil.rmtree(target)
            except OSError as exc:
                raise BuildError(f"cannot remove it: {exc.strerror or exc}", path=target,
                                 hint="check its permissions") from None
            removed.append(target.relative_to(project.root).as_posix() + "/")
    if not quiet:
        click.echo(f"removed {', '.join(removed)} (content/_freeze is kept)")

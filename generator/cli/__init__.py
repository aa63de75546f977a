"""The `lora-site` command line. Commands are thin: each opens a build context and calls one
function of the package (cli/results.py: run, figures, verify, audit; cli/pages.py: build,
render, serve; cli/common.py: what they share).

Nothing heavy is imported at module level, so `lora-site --help` never loads torch or matplotlib.
"""
from __future__ import annotations

import contextlib

import click

from .. import __version__
from ..core.errors import one_line
from . import author, pages, results


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised like Ctrl-C's KeyboardInterrupt so the same cleanup runs: a
    BaseException, so no `except Exception` on the way can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_interrupt():
    """While a command runs, SIGTERM and SIGHUP interrupt it as Ctrl-C does (their default
    would end the process on the spot, leaving temporary folders behind)."""
    import signal

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_DFL:
            continue                # ignored on purpose (nohup) or handled by an embedding app
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:          # not the main thread (an embedding application's worker)
            break
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


DEBUG_KEY = "lora_site.debug"
DEBUG_HELP = "On an error, print the full traceback (also LORA_SITE_DEBUG=1)."


def _note_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG_KEY] = True      # meta is shared by the whole command line's contexts
    return value


def debug_option() -> click.Option:
    """--debug for a command: `lora-site build --debug` as well as `lora-site --debug build`."""
    return click.Option(["--debug"], is_flag=True, expose_value=False, callback=_note_debug,
                        help=DEBUG_HELP)


def _usage_error(exc: click.UsageError):
    """A usage error (a bad option value, an unknown option) as the one line every other error
    is, naming the command's help."""
    from ..core.errors import LoraSiteError

    where = exc.ctx.command_path if exc.ctx is not None else "lora-site"
    error = LoraSiteError(one_line(exc.format_message()), hint=f"see {where} --help")
    error.exit_code = exc.exit_code
    return error


def first_sentence(help_text: str | None) -> str:
    """A command's summary: the first sentence of its help, whole (click would cut it to fit
    one line and end it with '...')."""
    import inspect
    import re

    para = inspect.cleandoc(help_text or "").split("\n\n", 1)[0]
    para = " ".join(para.split())
    return re.split(r"(?<=[.!?])\s", para, maxsplit=1)[0]


class LoraSiteGroup(click.Group):
    """Every failure ends as one line on stderr and a non-zero exit, never a traceback, unless
    --debug: errors the user can fix are LoraSiteError (they name the file, field and fix); an
    interruption says nothing was left half-written; anything else is a bug, reported in one
    line with the advice to re-run with --debug. Every command takes --debug too. `--help`
    lists each command with the whole first sentence of its help, wrapped."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "debug" for p in cmd.params):
            cmd.params.append(debug_option())
        super().add_command(cmd, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _usage_error(exc) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, first_sentence(cmd.help)) for name, cmd in
                ((n, self.get_command(ctx, n)) for n in self.list_commands(ctx))
                if cmd is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        import signal
        import traceback

        from ..core.errors import LoraSiteError

        def debugging() -> bool:
            # Read when it matters: a command's own --debug is parsed inside super().invoke.
            return bool(ctx.params.get("debug") or ctx.meta.get(DEBUG_KEY))

        try:
            with _signals_interrupt():
                return super().invoke(ctx)
        except click.UsageError as exc:
            if debugging():
                traceback.print_exc()
            raise _usage_error(exc) from None
        except click.ClickException:
            if debugging():
                traceback.print_exc()
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            if debugging():
                raise
            signum = getattr(exc, "signum", signal.SIGINT)
            error = LoraSiteError(f"interrupted by {signal.Signals(signum).name}",
                                  hint="nothing was left half-written: site/ and the results are "
                                       "replaced only once complete")
            error.exit_code = 128 + signum
            raise error from None
        except OSError as exc:
            if debugging():
                raise
            from ..core.oserror import os_hint, os_reason

            raise LoraSiteError(one_line(os_reason(exc)), path=exc.filename,
                                hint=f"{os_hint(exc)}; run with --debug for the traceback"
                                ) from None
        except Exception as exc:
            if debugging():
                raise
            raise LoraSiteError(one_line(f"unexpected error: {type(exc).__name__}: {exc}"),
                                hint="run with --debug for the traceback") from None


@click.group(cls=LoraSiteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lora-site")
@click.option("--debug", is_flag=True, envvar="LORA_SITE_DEBUG", help=DEBUG_HELP)
def main(debug: bool) -> None:
    """Build a reproducible article about LoRA and attention: run the experiments, draw the
    figures, render a Jekyll post and a static HTML site."""
    from ..core.numerics import pin

    pin()           # before torch or numpy loads (run() did it already for the console script)


for command in (results.run_command, results.figures, results.verify, pages.serve,
                pages.build, pages.render, results.audit, author.new, author.list_command,
                author.clean):
    main.add_command(command)


def run() -> None:
    """The `lora-site` program (console script, ``python -m generator``): main() as the whole
    of a process, with the garbage collector set for a short run. Tests call main()."""
    import gc

    # A build creates many long-lived objects (modules, compiled templates, Markdown's
    # tables) and few reference cycles; at the default threshold (700) the collector walks
    # them over and over while they are created.
    gc.set_threshold(50_000, 20, 20)
    from ..core.numerics import pin

    # First thing: every library that computes a stored number reads these variables when it
    # loads, and the processes this one starts inherit them (core/numerics.py says which).
    pin()
    try:
        main()
    finally:
        # At exit Python collects everything still alive just before freeing it all; nothing
        # relies on that pass (files are closed by with-blocks), and it costs a measurable
        # part of a prose-edit rebuild. Frozen objects are still freed, only not scanned.
        gc.freeze()

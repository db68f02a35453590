"""The command line: typer commands that parse flags, call `cloudorch.api`, and render; the only
place that prints and that turns a `CloudorchError` into a message and an exit code (`main`).

It imports the facade, `errors` and rendering helpers, never `engine`, `run`, `state` or a provider
directly; and lightly: `cloudorch --help` must not load a provider, a cloud SDK or the engine.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings

from cloudorch.errors import CloudorchError, ExitCode


def run() -> None:
    """The `cloudorch` console script and `python -m cloudorch`: `main` in a process of its own."""
    # One command allocates a lot (plan documents, SDK service models) and frees nearly all of it
    # by reference counting, yet with the default threshold (700) the cycle collector runs
    # thousands of times, and its full passes re-walk every object made at import. Collect 15x
    # less often and never re-walk what exists by now: ~10% of a no-change plan. Cycles are
    # still collected. Only here, not in `main`, which tests and other programs call in process.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cloudorch` console script; returns the process exit code."""
    try:
        return _main(argv)
    finally:
        workers = sys.modules.get("cloudorch.state.backends.worker")
        if workers is not None:
            workers.shutdown()  # a state backend's worker process, if the command started one


def _main(argv: list[str] | None) -> int:
    from cloudorch.cli import cihost
    from cloudorch.cli.prefetch import prefetch_store

    cihost.reset()  # one process may run several commands (tests, other programs): each finds its host

    prefetch_store(sys.argv[1:] if argv is None else argv)
    from cloudorch.cli import app as _commands  # noqa: F401  (registers every command)
    from cloudorch.cli.common import app
    from cloudorch.cli.output import Output

    # urllib3 warns on import of its SOCKS module when PySocks is absent, which some SDKs trigger
    # even with no proxy configured: noise on every screen, not something the user can act on.
    warnings.filterwarnings("ignore", message="SOCKS support in urllib3 requires")
    try:
        rv = app(args=argv, prog_name="cloudorch", standalone_mode=False)
    except SystemExit as exc:  # typer.Exit and --help
        return int(exc.code or 0)
    except CloudorchError as exc:
        Output.current().error(exc)
        cihost.annotate_error(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        Output.current().plain("Interrupted.", err=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # click usage errors and real bugs
        aborts, usage_errors = _click_exception_types()
        if isinstance(exc, aborts):
            Output.current().plain("Aborted.", err=True)
            return int(ExitCode.INTERRUPTED)
        if isinstance(exc, usage_errors):
            # click writes the offending argument as typed: shown through the guarded console
            import io

            shown = io.StringIO()
            exc.show(file=shown)  # type: ignore[attr-defined]
            Output.current().plain(shown.getvalue().rstrip("\n"), err=True)
            return int(ExitCode.ERROR)
        if os.environ.get("CLOUDORCH_DEBUG"):
            raise
        Output.current().plain(
            f"Internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in cloudorch. Run again with CLOUDORCH_DEBUG=1 for the traceback and report it.",
            err=True,
        )
        return int(ExitCode.ERROR)
    return rv if isinstance(rv, int) else 0


def _click_exception_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(abort types, usage-error types): typer 0.2x vendors click as `typer._click`, older typer uses click."""
    import typer

    aborts: list[type[BaseException]] = [typer.Abort]
    usage: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException  # type: ignore[import-not-found,unused-ignore]

        usage.append(ClickException)
    except ImportError:
        pass
    try:
        import click

        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    except ImportError:
        pass
    return tuple(aborts), tuple(usage)


if __name__ == "__main__":
    sys.exit(main())

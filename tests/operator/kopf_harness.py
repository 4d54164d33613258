"""Run a kopf operator inside the test process, against the emulated API.

The operator runs with ``kopf.testing.KopfRunner`` in its own thread and event loop (entered through
``asyncio.to_thread``): running ``kopf.operator()`` in pytest's loop cancels foreign tasks on exit, and
the emulator must keep serving on the test's loop while the operator runs.

Handler registries. kopf registers handlers at import time into its process-wide default registry.
* A module given by name (``-m pkg.mod``) is imported once per process, like a real deployment; a
  restart reuses the registry it registered into, so restarts run the very same handlers.
* A handler *file* (``path/to/handlers.py``) is executed by the harness into a registry of its own,
  once per ``OperatorRun``, so that throwaway test operators never leak handlers into the default
  registry (where they would run inside every later operator of the session).
The default registry is restored when a run stops (``kopf run`` replaces it when given a registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kopf
from kopf.testing import KopfRunner

from harness.polling import wait_for

DEFAULT_ARGS = ("run", "--all-namespaces", "--standalone", "--verbose")
_loaded = itertools.count()
# The process's default registry as it was before any run: the one the operator package's handlers register
# into when imported. Every run starts from it and every stop puts it back. A run's own start cannot be the
# reference: ``kopf run`` replaces the default registry from its thread when it starts, so a second run
# started while a first is up (and stopped after it) would otherwise "restore" the first run's handler-file
# registry, and every later operator of the session would run those handlers instead of the real ones.
PROCESS_REGISTRY = kopf.get_default_registry()


def _load_handler_files(paths: Sequence[str]) -> kopf.OperatorRegistry:
    """Execute kopf handler files into a fresh registry, leaving the default registry untouched."""
    previous = kopf.get_default_registry()
    # The default registry's class (kopf's "smart" registry) also carries the fallback login handlers.
    registry = type(previous)()
    kopf.set_default_registry(registry)
    try:
        for path in paths:
            name = f"__authyard_test_operator_{next(_loaded)}__"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load kopf handlers from {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    finally:
        kopf.set_default_registry(previous)
    return registry


def operator_args(target: str | Path | Sequence[str]) -> tuple[list[str], list[str]]:
    """(kopf CLI args without handler files, handler files) for a target:

    * a path to a ``.py`` file with handlers -> ``kopf run -A --standalone --verbose`` with it;
    * a module name (``authyard_operator.main``) -> the same with ``-m module``;
    * a list of kopf CLI args -> used as is (``.py`` positionals are loaded by the harness).
    """
    if isinstance(target, Path) or (isinstance(target, str) and target.endswith(".py")):
        return [*DEFAULT_ARGS], [str(target)]
    if isinstance(target, str):
        return [*DEFAULT_ARGS, "-m", target], []
    args, files = [], []
    previous = ""
    for arg in target:
        if arg.endswith(".py") and not previous.startswith("-"):
            files.append(arg)
        else:
            args.append(arg)
        previous = arg if arg.startswith("-") and "=" not in arg and arg not in _FLAGS else ""
    return args, files


# kopf run options that take no value (so the next argument is a positional).
_FLAGS = {
    "-A",
    "--all-namespaces",
    "--standalone",
    "--dev",
    "-v",
    "--verbose",
    "-d",
    "--debug",
    "-q",
    "--quiet",
}


class _Isolation:
    """click's CliRunner swaps sys.std* and os.environ per run and restores them when the run ends;
    with overlapping runs (two replicas) it restores them in the wrong order. Save the originals before
    the first of overlapping runs and put them back when the last one ends."""

    active = 0
    saved: tuple[Any, Any, Any, dict[str, str]] | None = None

    @classmethod
    def enter(cls) -> None:
        if cls.active == 0:
            cls.saved = (sys.stdin, sys.stdout, sys.stderr, dict(os.environ))
        cls.active += 1

    @classmethod
    def exit(cls) -> None:
        cls.active -= 1
        if cls.active == 0 and cls.saved is not None:
            sys.stdin, sys.stdout, sys.stderr, environ = cls.saved
            os.environ.clear()
            os.environ.update(environ)
            cls.saved = None


class OperatorRun:
    """One operator "process" that can be started, stopped and restarted (same handlers each time).

    ``env`` is set in ``os.environ`` for the duration of each run (click's isolation; restored after).
    ``output`` accumulates the operator's log output of all runs (kopf logs to the captured stderr)."""

    def __init__(
        self,
        target: str | Path | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        settings: kopf.OperatorSettings | None = None,
        reraise: bool = True,
    ) -> None:
        self.args, files = operator_args(target)
        self.registry = _load_handler_files(files) if files else PROCESS_REGISTRY
        self.env = dict(env or {})
        self.timeout = timeout
        self.settings = settings
        self.reraise = reraise
        self.outputs: list[str] = []
        self.starts = 0
        self._runner: KopfRunner | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def output(self) -> str:
        return "".join(self.outputs)

    async def start(
        self, *, ready: Callable[[], Any] | None = None, ready_timeout: float | None = None
    ) -> OperatorRun:
        """Start the operator; with ``ready``, wait until that predicate holds (e.g. watches are open)."""
        if self._runner is not None:
            raise RuntimeError("the operator is already running")
        runner = KopfRunner(
            self.args,
            timeout=self.timeout,
            registry=self.registry,
            settings=self.settings,
            reraise=self.reraise,
            env=self.env,
        )
        _Isolation.enter()
        try:
            await asyncio.to_thread(runner.__enter__)
        except BaseException:
            _Isolation.exit()
            raise
        self._runner = runner
        self.starts += 1
        if ready is not None:
            try:
                await wait_for(
                    lambda: runner.future.done() or ready(),
                    ready_timeout or self.timeout,
                    message="the operator did not become ready",
                )
            except BaseException:
                await self.stop()
                raise
            if runner.future.done():  # it exited during start-up: stop() re-raises its exception
                await self.stop()
                raise RuntimeError(f"the operator exited during start-up:\n{self.output}")
        return self

    async def stop(self) -> None:
        """Stop the operator (as SIGTERM would) and wait for its thread; re-raises its failure."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await asyncio.to_thread(runner.__exit__, None, None, None)
        finally:
            _Isolation.exit()
            if runner.future.done() and runner.future.exception() is None:
                self.outputs.append(runner.future.result().output)
            kopf.set_default_registry(PROCESS_REGISTRY)

    async def restart(self, **start_kwargs: Any) -> OperatorRun:
        await self.stop()
        return await self.start(**start_kwargs)


@contextlib.asynccontextmanager
async def run_operator(
    target: str | Path | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 -- KopfRunner's stop timeout and the readiness deadline
    ready: Callable[[], Any] | None = None,
    settings: kopf.OperatorSettings | None = None,
) -> AsyncIterator[OperatorRun]:
    """Run an operator for the duration of the ``async with`` block (stop/restart it inside at will)."""
    run = OperatorRun(target, env=env, timeout=timeout, settings=settings)
    await run.start(ready=ready)
    try:
        yield run
    finally:
        await run.stop()


def kopf_command(target: str | Path | Sequence[str]) -> list[str]:
    """``python -m kopf ...`` for a handler file, a module name, or kopf CLI args (as operator_args)."""
    if isinstance(target, Path) or isinstance(target, str):
        args, files = operator_args(target)
        return [sys.executable, "-m", "kopf", *args, *files]
    return [sys.executable, "-m", "kopf", *target]

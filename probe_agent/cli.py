"""Command line: run, check, validate, demo. No probe logic here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from probe_agent import __version__
from probe_agent.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    AgentConfig,
    load_config,
    resolve_config_path,
)
from probe_agent.errors import ConfigError
from probe_agent.logs import setup_logging
from probe_agent.model import Status
from probe_agent.redact import Redactor
from probe_agent.yamlload import MAX_CONFIG_BYTES

log = logging.getLogger("probe_agent")

DEFAULT_LISTEN = "0.0.0.0:9464"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid address {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    return (host.strip("[]") or "0.0.0.0"), int(port)


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional on platforms without wheels
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def print_problems(problems: Sequence[str], source: Path | str) -> None:
    # A problem may quote what was written (an invalid URL with a password in it): the
    # redactor's patterns mask the secret forms even where no config could be loaded.
    redact = Redactor().redact
    print(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {redact(problem)}", file=sys.stderr)


# --- commands ----------------------------------------------------------------


def load_args_config(args: argparse.Namespace) -> tuple[Path, AgentConfig]:
    path = resolve_config_path(args.config)
    return path, load_config(path, max_bytes=args.max_config_bytes, allow_empty=args.allow_empty)


def cmd_validate(args: argparse.Namespace) -> int:
    from probe_agent.runner import build_handles

    try:
        path, config = load_args_config(args)
        # The same build steps as run and check (TLS contexts, files), without connecting.
        build_handles(config)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config))
        return 1
    print(f"{path}: ok, {len(config.probes)} probes")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from probe_agent.check import render_json, render_table, run_once, select, worst
    from probe_agent.runner import build_handles

    try:
        _path, config = load_args_config(args)
        probes = select(config, args.probe or [], args.tag or [])
        handles = build_handles(config, probes)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config))
        return int(Status.UNKNOWN)
    setup_logging("text", args.log_level, Redactor(config.secrets))
    results = run_async(run_once(config, handles))
    targets = {p.name: config.redactor(p.name).redact(p.target()) for p in probes}
    (render_json if args.format == "json" else render_table)(results, targets)
    return int(worst(results))


def cmd_run(args: argparse.Namespace) -> int:
    try:
        path, config = load_args_config(args)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config))
        return 1
    from probe_agent.server import WebOptions

    try:
        options = WebOptions.load(args.web_enable_lifecycle, args.web_health_detail, args.web_config_file)
    except ConfigError as exc:
        print_problems(exc.problems, args.web_config_file)
        return 1
    host, port = args.listen
    return run_async(
        serve(
            config, path, host, port, args.log_format, args.log_level, args.grace,
            max_config_bytes=args.max_config_bytes, allow_empty=args.allow_empty, web_options=options,
        )
    )


async def serve(
    config: AgentConfig,
    path: Path | None,
    host: str,
    port: int,
    log_format: str,
    log_level: str,
    grace: float,
    extra_cleanup: Any = None,
    *,
    max_config_bytes: int = MAX_CONFIG_BYTES,
    allow_empty: bool = False,
    web_options: Any = None,
) -> int:
    from probe_agent.agent import Agent
    from probe_agent.server import WebOptions, start_server

    options: WebOptions = web_options or WebOptions()

    log_filter = setup_logging(log_format, log_level, Redactor(config.secrets))
    agent = Agent(
        config, path, grace=grace, log_filter=log_filter, max_config_bytes=max_config_bytes, allow_empty=allow_empty
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        try:
            options.reload_web_config()  # renewed certificates, changed users
        except ConfigError as exc:
            log.error("web config reload rejected; keeping the running one", extra={"problems": exc.problems})
        task = asyncio.create_task(agent.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        runner = await start_server(agent, host, port, options)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await agent.start()
    except ConfigError as exc:
        print_problems(exc.problems, path or "config")
        await agent.stop()
        await runner.cleanup()
        return 1
    log.info("listening", extra={"address": f"{host}:{port}", "config": str(path) if path else "(embedded)"})
    await stop.wait()
    log.info("stopping: draining probe runs in flight", extra={"grace_seconds": grace})
    await agent.stop()
    await runner.cleanup()
    if extra_cleanup is not None:
        await extra_cleanup()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from probe_agent.demo import run_demo

    host, port = args.listen
    shop_host, shop_port = args.shop_listen
    return run_async(run_demo(host, port, shop_host, shop_port, args.log_format, args.log_level))


# --- argument parsing ----------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probe-agent", description="Synthetic probes and health checks, exported to Prometheus."
    )
    parser.add_argument("--version", action="version", version=f"probe-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c", "--config", help=f"probes file (default: ${CONFIG_ENV_VAR} or ./{DEFAULT_CONFIG_PATH})"
        )
        p.add_argument(
            "--max-config-bytes", type=int, default=MAX_CONFIG_BYTES, metavar="N",
            help=f"refuse a probes file larger than this (default {MAX_CONFIG_BYTES:,})",
        )
        p.add_argument("--allow-empty", action="store_true", help="accept a probes file with no probes")

    def with_logging(p: argparse.ArgumentParser, default_format: str) -> None:
        p.add_argument("--log-format", choices=("json", "text"), default=default_format)
        p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    run = commands.add_parser("run", help="run the daemon: probes on their intervals, /metrics and /health")
    with_config(run)
    run.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    run.add_argument("--grace", type=float, default=10.0, help="seconds in-flight probes get on SIGTERM (default 10)")
    run.add_argument(
        "--web.enable-lifecycle", dest="web_enable_lifecycle", action="store_true",
        help="allow POST /-/reload (off by default, as in Prometheus; SIGHUP always reloads)",
    )
    run.add_argument(
        "--web.config.file", dest="web_config_file", metavar="FILE",
        help="TLS and basic auth for the agent's endpoints, in the exporter-toolkit web config format",
    )
    run.add_argument(
        "--web.health-detail", dest="web_health_detail", choices=("full", "status"), default="full",
        help="status: /health lists probes and their health only, no targets, messages or values",
    )
    with_logging(run, "json")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check", help="run probes once, print, exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN")
    with_config(check)
    check.add_argument("--probe", action="append", metavar="NAME", help="only this probe (repeatable)")
    check.add_argument("--tag", action="append", metavar="TAG", help="only probes with this tag (repeatable)")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.add_argument("--log-level", default="error", choices=("debug", "info", "warning", "error"))
    check.set_defaults(func=cmd_check)

    validate = commands.add_parser("validate", help="check the probes file; list every problem")
    with_config(validate)
    validate.set_defaults(func=cmd_validate)

    demo = commands.add_parser("demo", help="serve the bundled demo shop and probe it")
    demo.add_argument("--listen", type=parse_listen, default=parse_listen("127.0.0.1:9464"), help="agent HOST:PORT")
    demo.add_argument("--shop-listen", type=parse_listen, default=parse_listen("127.0.0.1:8080"), help="demo shop HOST:PORT")
    with_logging(demo, "text")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130

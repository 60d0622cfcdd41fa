"""Command line: run, check, validate, demo. No probe logic here."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from probe_agent import __version__
from probe_agent.core.defaults import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, MAX_CONFIG_BYTES

# Everything else is imported by the commands that use it: `--help` and an argument error answer
# before pydantic, asyncio or YAML load (tests/unit/test_layers.py says so).
if TYPE_CHECKING:
    from probe_agent.config.loader import AgentConfig, Selection
    from probe_agent.probes.base import ProbeConfig
    from probe_agent.runtime.runner import ProbeHandle

log = logging.getLogger("probe_agent")

DEFAULT_LISTEN = "0.0.0.0:9110"
LOG_LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("table", "json", "nagios", "junit", "prometheus")  # of check, with a file or without
PERFDATA_HELP = "nagios: which values become perfdata: default (the duration, the type's main values, those with thresholds), all, or NAME,NAME"


class CliParser(argparse.ArgumentParser):
    """argparse's parser; for `check` and `wait` (`plugin`), a usage error is a Nagios plugin's:
    exit 3 (UNKNOWN) with one line on stdout naming it, the usage on stderr. argparse's own exit
    2 is CRITICAL to Nagios, and it said nothing on stdout."""

    plugin = False

    def error(self, message: str) -> NoReturn:
        if not self.plugin:
            super().error(message)
        from probe_agent.outputs.problems import plugin_unknown

        plugin_unknown(f"usage: {message} (probe-agent check --help)")
        self.print_usage(sys.stderr)
        sys.exit(3)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid address {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9110")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def parse_seconds(value: str) -> float:
    from probe_agent.schema.fields import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional on platforms without wheels
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# --- commands ----------------------------------------------------------------


def load_args_config(
    args: argparse.Namespace, selection: Selection | None = None, *, daemon: bool = False
) -> tuple[Path, AgentConfig]:
    """`daemon`: a discovery source that does not answer yet leaves its group pending (the daemon
    asks again) instead of failing the load, as it would for check and validate."""
    from probe_agent.config.loader import load_config, resolve_config_path

    path = resolve_config_path(args.config)
    return path, load_config(
        path,
        max_bytes=args.max_config_bytes,
        allow_empty=args.allow_empty,
        selection=selection,
        discovery={} if daemon else None,
    )


def load_or_report(args: argparse.Namespace, *, daemon: bool = False) -> tuple[Path, AgentConfig] | None:
    """The config, or None once its problems are printed."""
    from probe_agent.config.loader import resolve_config_path
    from probe_agent.core.errors import ConfigError
    from probe_agent.outputs.problems import print_problems

    try:
        return load_args_config(args, daemon=daemon)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config), exc.locations)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from probe_agent.config.loader import resolve_config_path
    from probe_agent.core.errors import ConfigError
    from probe_agent.outputs.problems import print_problems
    from probe_agent.runtime.runner import build_handles

    try:
        path, config = load_args_config(args)
        # The same build steps as run and check (TLS contexts, files), without connecting.
        build_handles(config)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config), exc.locations)
        return 1
    print(f"{'standard input' if str(path) == '-' else path}: ok, {len(config.probes)} probes")
    return 0


def cmd_types(args: argparse.Namespace) -> int:
    import json

    from probe_agent.outputs.types import describe_all, render_text
    from probe_agent.probes import REGISTRY

    wanted = args.type or list(REGISTRY)
    unknown = [name for name in wanted if name not in REGISTRY]
    if unknown:
        print(f"types: unknown probe type {unknown[0]!r} (known: {', '.join(REGISTRY)})", file=sys.stderr)
        return 1
    if not args.type:  # all of them: the ones installed, and what the others need
        for name in list(wanted):
            missing = REGISTRY.unavailable(name)
            if missing is not None:
                print(f"{name}: not installed (needs {missing.library}: {missing.remedy})", file=sys.stderr)
                wanted.remove(name)
    try:
        types = describe_all({name: REGISTRY[name] for name in wanted}, REGISTRY.origin)
    except (ImportError, TypeError) as exc:  # an installed type that does not load: say which
        print(f"types: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(types, indent=2) if args.format == "json" else render_text(types),
        end="\n" if args.format == "json" else "",
    )
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from probe_agent.core.errors import ConfigError
    from probe_agent.core.yamlload import decode, load_yaml, read_config_bytes
    from probe_agent.outputs.rules import dump_rules, rule_groups

    loaded = load_or_report(args)
    if loaded is None:
        return 1
    path, config = loaded
    groups: list[Any] = []
    for include in args.include:
        try:
            included = load_yaml(decode(read_config_bytes(include, args.max_config_bytes)))
        except ConfigError as exc:
            print(f"{include}: {'; '.join(exc.problems)}", file=sys.stderr)
            return 1
        if not isinstance(included, dict) or not isinstance(included.get("groups"), list):
            print(f"{include}: not a Prometheus rules file (no `groups:` list)", file=sys.stderr)
            return 1
        groups += included["groups"]
    if not config.slos and not groups:
        print(f"{path}: no slos: to write rules for (see docs/slos.md)", file=sys.stderr)
        return 1
    groups += rule_groups(config.slos, config.probes)
    sources = " and ".join([str(path), *args.include])
    document: dict[str, Any] = {"groups": groups}
    if args.kubernetes:
        # prometheus-operator's PrometheusRule holds the same groups under spec
        document = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": args.kubernetes, "labels": {"app.kubernetes.io/name": "probe-agent"}},
            "spec": document,
        }
    text = f"# Generated by `probe-agent rules` from {sources}; do not edit, regenerate.\n" + dump_rules(document)
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    """Start, end or list maintenance windows on a running agent (its /-/maintenance)."""
    from probe_agent.commands.maintenance import MaintenanceRequest, send

    wanted = MaintenanceRequest(
        args.action,
        args.agent,
        probes=args.probe,
        tags=args.tag,
        duration=args.duration,
        reason=args.reason or "",
        name=args.name or "",
        user=args.user or "",
        timeout=args.timeout,
    )
    return send(wanted)


def load_selected(args: argparse.Namespace) -> tuple[AgentConfig, list[ProbeConfig], list[ProbeHandle]] | None:
    """For check and wait: the probes `--probe` and `--tag` select, built (only they are
    validated and have their ${VAR} resolved), with logging set up; None once problems are printed."""
    from probe_agent.commands.check import select
    from probe_agent.config.loader import Selection, resolve_config_path
    from probe_agent.core.errors import ConfigError
    from probe_agent.core.logs import setup_logging
    from probe_agent.core.redact import Redactor
    from probe_agent.outputs.problems import print_problems
    from probe_agent.runtime.runner import build_handles

    try:
        _path, config = load_args_config(args, Selection(tuple(args.probe or ()), tuple(args.tag or ())))
        probes = select(config, args.probe or [], args.tag or [])
        cap = getattr(args, "probe_timeout", None)  # check -t: a cap on every probe's timeout
        if cap is not None:
            probes = [p.model_copy(update={"timeout": min(p.timeout, cap)}) for p in probes]
        handles = build_handles(config, probes)
    except ConfigError as exc:
        print_problems(exc.problems, resolve_config_path(args.config), exc.locations, plugin=True)
        return None
    setup_logging("text", args.log_level, Redactor(config.secrets))
    return config, probes, handles


def cmd_check(args: argparse.Namespace) -> int:
    from probe_agent.commands.check import mark_maintenance, report, run_once
    from probe_agent.core.results import Status

    loaded = load_selected(args)
    if loaded is None:
        return int(Status.UNKNOWN)
    config, probes, handles = loaded
    results = run_async(run_once(config, handles, trace=args.verbose))
    mark_maintenance(config, results)
    return report(args.format, results, config, probes, args.perfdata)


def cmd_wait(args: argparse.Namespace) -> int:
    from probe_agent.commands.wait import progress, wait_until_ready
    from probe_agent.core.results import Status
    from probe_agent.outputs.reports import render_table, worst

    loaded = load_selected(args)
    if loaded is None:
        return int(Status.UNKNOWN)
    config, probes, handles = loaded
    shown = progress([h.name for h in handles])
    ready, results = run_async(wait_until_ready(config, handles, args.timeout, args.pause, shown.update))
    if ready:
        print(f"ready: {len(handles)} probe{'s' if len(handles) != 1 else ''} passed", file=sys.stderr)
        return 0
    print(f"not ready after {args.timeout:g}s:", file=sys.stderr)
    targets = {p.name: config.redactor(p.name).redact(p.target()) for p in probes}
    not_ready = [r for r in results if not r.success] or results
    render_table(not_ready, targets)
    return int(worst(not_ready)) or int(Status.CRITICAL)


def cmd_run(args: argparse.Namespace) -> int:
    from probe_agent.core.errors import ConfigError
    from probe_agent.outputs.problems import print_problems

    if args.config == "-":
        print(
            "run: -c - is not possible: the daemon reloads its file (use validate or check with -c -)", file=sys.stderr
        )
        return 1
    from probe_agent.config.loader import resolve_config_path
    from probe_agent.runtime.watch import snapshot

    # before the file is read: a change made while the agent starts is then a change to the watch
    watch_baseline = snapshot(resolve_config_path(args.config), lambda: ())
    loaded = load_or_report(args, daemon=True)
    if loaded is None:
        return 1
    path, config = loaded
    from probe_agent.web.connlimits import ConnectionLimits
    from probe_agent.web.server import WebOptions

    try:
        limits = ConnectionLimits(max(1, args.web_max_connections), args.web_read_header_timeout)
        options = WebOptions.load(args.web_enable_lifecycle, args.web_health_detail, args.web_config_file, limits)
    except ConfigError as exc:
        print_problems(exc.problems, args.web_config_file, exc.locations)
        return 1
    shard = None
    if args.shard:
        from probe_agent.config.shard import Shard

        try:
            shard = Shard.parse(args.shard, os.environ.get("HOSTNAME", "") or socket.gethostname())
        except ValueError as exc:
            print(f"run: {exc}", file=sys.stderr)
            return 1
    from probe_agent.runtime.historyfile import default_path

    history_file = (
        default_path() if args.history_file is None else (Path(args.history_file) if args.history_file else None)
    )
    host, port = args.listen
    from probe_agent.daemon import serve

    return run_async(
        serve(
            config,
            path,
            host,
            port,
            args.log_format,
            args.log_level,
            args.grace,
            max_config_bytes=args.max_config_bytes,
            allow_empty=args.allow_empty,
            web_options=options,
            watch_interval=args.watch_config if args.watch_config is not None else 0.0,
            watch_baseline=watch_baseline,
            shard=shard,
            history_file=history_file,
            history_save_every=args.history_save_interval,
        )
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from probe_agent.demo import run_demo

    host, port = args.listen
    shop_host, shop_port = args.shop_listen
    return run_async(run_demo(host, port, shop_host, shop_port, args.log_format, args.log_level))


# --- argument parsing ----------------------------------------------------------


def build_parser(plugin: bool = False) -> argparse.ArgumentParser:
    parser = CliParser(prog="probe-agent", description="Synthetic probes and health checks, exported to Prometheus.")
    parser.plugin = plugin  # `check` or `wait` comes first: its usage errors are a plugin's
    parser.add_argument("--version", action="version", version=f"probe-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            help=f"probes file, - for standard input (default: ${CONFIG_ENV_VAR} or ./{DEFAULT_CONFIG_PATH})",
        )
        p.add_argument(
            "--max-config-bytes",
            type=int,
            default=MAX_CONFIG_BYTES,
            metavar="N",
            help=f"refuse a probes file larger than this (default {MAX_CONFIG_BYTES:,})",
        )
        p.add_argument("--allow-empty", action="store_true", help="accept a probes file with no probes")

    def with_logging(p: argparse.ArgumentParser, default_format: str) -> None:
        # --log.format and --log.level: the spellings of Prometheus and its exporters
        p.add_argument(
            "--log-format",
            "--log.format",
            dest="log_format",
            choices=("json", "text", "logfmt"),
            default=default_format,
        )
        p.add_argument("--log-level", "--log.level", dest="log_level", default="info", choices=LOG_LEVELS)

    run = commands.add_parser("run", help="run the daemon: probes on their intervals, /metrics and /health")
    with_config(run)
    run.add_argument(
        "--listen",
        "--web.listen-address",  # blackbox_exporter's spelling
        dest="listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        help=f"HOST:PORT (default {DEFAULT_LISTEN})",
    )
    run.add_argument("--grace", type=float, default=10.0, help="seconds in-flight probes get on SIGTERM (default 10)")
    run.add_argument(
        "--web.enable-lifecycle",
        dest="web_enable_lifecycle",
        action="store_true",
        help="allow POST /-/reload (off by default, as in Prometheus; SIGHUP always reloads)",
    )
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth for the agent's endpoints, in the exporter-toolkit web config format",
    )
    run.add_argument(
        "--web.health-detail",
        dest="web_health_detail",
        choices=("full", "status"),
        default="full",
        help="status: /health lists probes and their health only, no targets, messages or values",
    )
    run.add_argument(
        "--web.max-connections",
        dest="web_max_connections",
        type=int,
        default=256,
        metavar="N",
        help="connections to the agent's port at once; more are closed on accept (default 256)",
    )
    run.add_argument(
        "--web.read-header-timeout",
        dest="web_read_header_timeout",
        type=parse_seconds,
        default=10.0,
        metavar="DURATION",
        help="time a client has to send a request's headers, and a TLS handshake (default 10s)",
    )
    run.add_argument(
        "--history-file",
        dest="history_file",
        metavar="FILE",
        help="keep the status page's history and incidents over restarts in FILE (default: "
        "/var/lib/probe-agent/history.json when that directory is writable; '' turns it off)",
    )
    run.add_argument(
        "--history-save-interval",
        type=parse_seconds,
        default=60.0,
        metavar="DURATION",
        help="how often the history file is written (and at exit; default 1m)",
    )
    run.add_argument(
        "--watch-config",
        type=parse_seconds,
        default=2.0,
        metavar="INTERVAL",
        help="reload when the probes file changes (a ConfigMap update too), looking every INTERVAL (default 2s)",
    )
    run.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="run only this replica's share of the probes: 1/3, or auto/3 for a StatefulSet pod's ordinal",
    )
    run.add_argument(
        "--no-watch-config",
        dest="watch_config",
        action="store_const",
        const=None,
        help="reload on SIGHUP or POST /-/reload only",
    )
    with_logging(run, "json")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser(
        "check",
        help="run probes once, print, exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN",
        epilog="Without a file: probe-agent check TYPE TARGET [-w RANGE] [-c RANGE] [--set FIELD=VALUE] "
        "(probe-agent check http --help for its options).",
    )
    with_config(check)
    check.add_argument("--probe", action="append", metavar="NAME", help="only this probe (repeatable)")
    check.add_argument("--tag", action="append", metavar="TAG", help="only probes with this tag (repeatable)")
    check.add_argument(
        "-v", "--verbose", action="store_true", help="a trace of each run: requests, answers, TLS, errors (redacted)"
    )
    check.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="nagios: a plugin's status line with perfdata; junit: XML for CI; prometheus: for node_exporter's textfile collector",
    )
    check.add_argument("--perfdata", default="default", metavar="WHICH", help=PERFDATA_HELP)
    check.add_argument(
        "-t",
        "--timeout",
        dest="probe_timeout",
        type=parse_seconds,
        metavar="DURATION",
        help="a plugin's deadline: no probe runs longer, whatever its own timeout (a duration or seconds)",
    )
    check.add_argument("--log-level", "--log.level", dest="log_level", default="error", choices=LOG_LEVELS)
    check.set_defaults(func=cmd_check)
    check.plugin = True

    wait = commands.add_parser(
        "wait",
        help="rerun probes until each passes success_threshold times in a row; exit 0, or the check code at --timeout",
    )
    with_config(wait)
    wait.add_argument("--probe", action="append", metavar="NAME", help="only this probe (repeatable)")
    wait.add_argument("--tag", action="append", metavar="TAG", help="only probes with this tag (repeatable)")
    wait.add_argument("--timeout", type=parse_seconds, default=120.0, help="give up after this long (default 2m)")
    wait.add_argument("--pause", type=parse_seconds, default=1.0, help="between two runs of a probe (default 1s)")
    wait.add_argument("--log-level", "--log.level", dest="log_level", default="error", choices=LOG_LEVELS)
    wait.set_defaults(func=cmd_wait)
    wait.plugin = True

    validate = commands.add_parser("validate", help="check the probes file; list every problem")
    with_config(validate)
    validate.set_defaults(func=cmd_validate)

    types = commands.add_parser("types", help="list the probe types, built-in and installed, with their fields")
    types.add_argument("type", nargs="*", help="only these types")
    types.add_argument("--format", choices=("text", "json"), default="text")
    types.set_defaults(func=cmd_types)

    rules = commands.add_parser("rules", help="write Prometheus recording and burn-rate alerting rules for the slos")
    with_config(rules)
    rules.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    rules.add_argument(
        "--include",
        metavar="FILE",
        action="append",
        default=[],
        help="put this rules file's groups first (such as deploy/alerts.yml)",
    )
    rules.add_argument("--kubernetes", metavar="NAME", help="write a prometheus-operator PrometheusRule of this name")
    rules.set_defaults(func=cmd_rules)

    maintenance = commands.add_parser("maintenance", help="start, end or list maintenance windows on a running agent")
    maintenance.add_argument("action", choices=("start", "end", "list"))
    maintenance.add_argument(
        "--probe", action="append", default=[], metavar="NAME", help="a probe it covers (repeatable)"
    )
    maintenance.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="probes with this tag (repeatable)"
    )
    maintenance.add_argument("--for", dest="duration", default="1h", metavar="DURATION", help="from now (default 1h)")
    maintenance.add_argument("--reason", help="shown on /health and the status page")
    maintenance.add_argument("--name", help="the window's name (start: default adhoc-TIME; end: required)")
    maintenance.add_argument(
        "--agent",
        default=f"http://127.0.0.1:{DEFAULT_LISTEN.rpartition(':')[2]}",
        help="the agent's URL (default %(default)s); it must run with --web.enable-lifecycle",
    )
    maintenance.add_argument("--user", help="basic auth user; the password is read from $PROBE_AGENT_PASSWORD")
    maintenance.add_argument("--timeout", type=parse_seconds, default=10.0, help="default 10s")
    maintenance.set_defaults(func=cmd_maintenance)

    demo = commands.add_parser("demo", help="serve the bundled demo shop and probe it")
    demo.add_argument("--listen", type=parse_listen, default=parse_listen("127.0.0.1:9110"), help="agent HOST:PORT")
    demo.add_argument(
        "--shop-listen", type=parse_listen, default=parse_listen("127.0.0.1:8080"), help="demo shop HOST:PORT"
    )
    with_logging(demo, "text")
    demo.set_defaults(func=cmd_demo)
    return parser


def adhoc_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="probe-agent check TYPE TARGET",
        description="Check one target without a probes file, with the same probe types, defaults and runner.",
        epilog="Examples: check http https://shop.example/health -w 250ms -c 1s; check postgres postgresql://probe@db/app; "
        "check redis cache:6379; check tcp smtp:25 --set expect='220 '; check dns 10.0.0.2 --set query_name=api.internal. "
        "Secrets from the environment: --set 'password=${PGPASSWORD}'.",
    )
    parser.add_argument("type", help="a probe type")
    parser.add_argument("target", help="URL, DSN or HOST:PORT, as the type takes it")
    ranges = "a duration (250ms: longer than that) or a Nagios range of durations (10:20, 1s:, ~:1s, @0:100ms)"
    parser.add_argument("-w", "--warning", metavar="RANGE", help=f"WARNING when the run's duration breaches {ranges}")
    parser.add_argument("-c", "--critical", metavar="RANGE", help=f"CRITICAL when the run's duration breaches {ranges}")
    parser.add_argument(
        "-t", "--timeout", default="10s", metavar="DURATION", help="hard deadline of the run (default 10s)"
    )
    parser.add_argument(
        "--expect-status", action="append", metavar="STATUS", help="http: 200, 2xx or 200-204 (repeatable)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="any field of the type (YAML value)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--perfdata", default="default", metavar="WHICH", help=PERFDATA_HELP)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="a trace of the run: requests, answers, TLS, errors"
    )
    parser.add_argument("--log-level", "--log.level", dest="log_level", default="error", choices=LOG_LEVELS)
    parser.plugin = True
    return parser


# Options of `check` (with a file, and TYPE TARGET) that take a value: the word after one is
# its value, not TYPE or TARGET.
_VALUED = frozenset(
    {"-c", "--config", "--max-config-bytes", "--probe", "--tag", "--format", "--perfdata", "--log-level", "--log.level"}
    | {"-w", "--warning", "--critical", "-t", "--timeout", "--expect-status", "--set"}
)


def is_adhoc(args: Sequence[str]) -> bool:
    """`check` with a word that is no option's value: TYPE [TARGET], in any place among the
    options (`check --format nagios -w 250ms http URL`). With a file, check takes no such word."""
    after_valued = False
    for arg in args:
        if arg == "--":
            return True
        if arg.startswith("-") and len(arg) > 1:
            after_valued = arg in _VALUED  # --format=nagios carries its value
            continue
        if not after_valued:
            return True
        after_valued = False
    return False


def cmd_check_adhoc(argv: Sequence[str]) -> int:
    from probe_agent.commands.check import adhoc_config, report, run_once
    from probe_agent.config.loader import parse_config
    from probe_agent.core.errors import ConfigError
    from probe_agent.core.logs import setup_logging
    from probe_agent.core.redact import Redactor
    from probe_agent.core.results import Status
    from probe_agent.outputs.problems import print_problems
    from probe_agent.runtime.runner import build_handles

    args = adhoc_parser().parse_args(argv)
    try:
        config = parse_config(
            adhoc_config(
                args.type, args.target, args.set, args.timeout, args.warning, args.critical, args.expect_status
            ),
            "<command line>",
        )
        handles = build_handles(config)
    except ConfigError as exc:
        print_problems(exc.problems, "command line", exc.locations, plugin=True)
        return int(Status.UNKNOWN)
    setup_logging("text", args.log_level, Redactor(config.secrets))
    results = run_async(run_once(config, handles, trace=args.verbose))
    return report(args.format, results, config, config.probes, args.perfdata)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a reader that left shows here, not in a traceback at exit
        return code
    except BrokenPipeError:
        from probe_agent.outputs.problems import stdout_gone

        stdout_gone()
        return 141  # as a shell's command killed by SIGPIPE (check's own state is in report())


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "check" and is_adhoc(argv[1:]):
        # `check TYPE TARGET`: an ad-hoc check, whose -c is Nagios' critical, not a file
        try:
            return cmd_check_adhoc(argv[1:])
        except KeyboardInterrupt:
            return 130
    args = build_parser(plugin=bool(argv) and argv[0] in ("check", "wait")).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130

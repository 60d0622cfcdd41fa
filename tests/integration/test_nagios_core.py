"""The shipped Nagios command definitions (deploy/nagios/probe-agent.cfg) in a real Nagios 4 core
(Debian's nagios4-core) started by the test, as its own user, beside monitoring-plugins'
check_http on the same target: the state, status line and perfdata the core records
(status.dat) for OK, WARNING and CRITICAL targets and for a usage and a config error. And the
Icinga 2 CheckCommand (deploy/icinga2/probe-agent.conf) in a real Icinga 2 (icinga2-bin): the
results its PerfdataWriter records."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SHIPPED = ROOT / "deploy" / "nagios" / "probe-agent.cfg"
SHIPPED_ICINGA = ROOT / "deploy" / "icinga2" / "probe-agent.conf"
INSTALLED = "/opt/probe-agent/bin/probe-agent"
NAGIOS = "/usr/sbin/nagios4"
ICINGA = "/usr/sbin/icinga2"
CHECK_HTTP = "/usr/lib/nagios/plugins/check_http"

pytestmark = pytest.mark.service("nagios")


class Target(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        code = 500 if self.path == "/fail" else 200
        body = b"ok\n" if code == 200 else b"broken\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SERVICES = {
    # description: (check_command, expected state, what the status line starts with)
    "ok": ("check_probe_agent_http!{url}/ok!1s!2s", 0, "PROBE-AGENT OK - "),
    "slow": ("check_probe_agent_http!{url}/slow!100ms!5s", 1, "PROBE-AGENT WARNING - "),
    "broken": ("check_probe_agent_http!{url}/fail!1s!2s", 2, "PROBE-AGENT CRITICAL - "),
    "tcp": ("check_probe_agent_tcp!127.0.0.1:{port}", 0, "PROBE-AGENT OK - "),
    "typo": ("check_probe_agent!http {url}/ok --bogus", 3, "PROBE-AGENT UNKNOWN - usage: "),
    "no-file": ("check_probe_agent_file!/nonexistent/probes.yaml", 3, "PROBE-AGENT UNKNOWN - "),
    "check_http": ("check_http_beside!{port}!/ok", 0, "HTTP OK: "),
}


def objects(url: str, port: int) -> str:
    days = "\n".join(
        f"    {day} 00:00-24:00"
        for day in ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    )
    text = f"""
define timeperiod {{
    timeperiod_name 24x7
    alias 24x7
{days}
}}
define command {{
    command_name notify-nobody
    command_line /bin/true
}}
define command {{
    command_name check_http_beside
    command_line {CHECK_HTTP} -I 127.0.0.1 -p $ARG1$ -u $ARG2$
}}
define contact {{
    contact_name nobody
    host_notifications_enabled 0
    service_notifications_enabled 0
    host_notification_period 24x7
    service_notification_period 24x7
    host_notification_options n
    service_notification_options n
    host_notification_commands notify-nobody
    service_notification_commands notify-nobody
}}
define host {{
    host_name loopback
    address 127.0.0.1
    max_check_attempts 1
    check_period 24x7
    contacts nobody
    notification_interval 0
    notification_period 24x7
}}
"""
    for description, (command, _, _) in SERVICES.items():
        text += f"""
define service {{
    host_name loopback
    service_description {description}
    check_command {command.format(url=url, port=port)}
    max_check_attempts 1
    check_interval 3600
    retry_interval 3600
    check_period 24x7
    contacts nobody
    notification_interval 0
    notification_period 24x7
}}
"""
    return text


def service_status(status_file: Path) -> dict[str, dict[str, str]]:
    """status.dat's servicestatus blocks by service_description."""
    found: dict[str, dict[str, str]] = {}
    text = status_file.read_text(errors="replace") if status_file.exists() else ""
    for block in re.findall(r"servicestatus \{\n(.*?)\n\s*\}", text, re.S):
        fields = dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
        found[fields["service_description"]] = fields
    return found


@pytest.fixture
def nagios(core_install: Path, target: str, tmp_path: Path) -> Iterator[Path]:
    """A Nagios 4 core with the shipped commands (pointed at a fresh core install), running as
    the nagios user; yields its status.dat."""
    if not Path(NAGIOS).exists() or not Path(CHECK_HTTP).exists():
        pytest.skip(
            "nagios4-core or monitoring-plugins-basic not installed (scripts/bootstrap.sh --test installs them)"
        )
    if os.geteuid() != 0:
        pytest.skip("starting a Nagios core as its own user needs root")
    folder = Path(tempfile.mkdtemp(prefix="nagios-"))
    port = int(target.rsplit(":", 1)[1])
    (folder / "checkresults").mkdir()
    (folder / "probe-agent.cfg").write_text(SHIPPED.read_text().replace(INSTALLED, str(core_install / "probe-agent")))
    (folder / "objects.cfg").write_text(objects(target, port))
    (folder / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n")
    settings = {
        "log_file": folder / "nagios.log",
        "cfg_file": folder / "objects.cfg",
        "status_file": folder / "status.dat",
        "object_cache_file": folder / "objects.cache",
        "precached_object_file": folder / "objects.precache",
        "resource_file": folder / "resource.cfg",
        "temp_file": folder / "nagios.tmp",
        "temp_path": folder,
        "lock_file": folder / "nagios.lock",
        "check_result_path": folder / "checkresults",
        "command_file": folder / "nagios.cmd",
        "query_socket": folder / "nagios.qh",
        "nagios_user": "nagios",
        "nagios_group": "nagios",
        "check_external_commands": 1,
        "retain_state_information": 0,
        "status_update_interval": 1,
        "check_result_reaper_frequency": 1,
        "interval_length": 1,
        "max_service_check_spread": 1,
        "use_syslog": 0,
        "enable_notifications": 0,
        "enable_flap_detection": 0,
        "process_performance_data": 0,
        "service_check_timeout": 30,
        "log_initial_states": 0,
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(f"cfg_file={folder / 'probe-agent.cfg'}")
    (folder / "nagios.cfg").write_text("\n".join(lines) + "\n")
    shutil.chown(folder, "nagios", "nagios")
    for path in folder.rglob("*"):
        shutil.chown(path, "nagios", "nagios")
    verified = subprocess.run([NAGIOS, "-v", str(folder / "nagios.cfg")], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout[-3000:]
    core = subprocess.Popen([NAGIOS, str(folder / "nagios.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (folder / "nagios.cmd").exists():
            assert time.monotonic() < deadline and core.poll() is None, "the core did not start"
            time.sleep(0.2)
        now = int(time.time())
        with open(folder / "nagios.cmd", "w") as commands:  # check each service now, not in an hour
            for description in SERVICES:
                commands.write(f"[{now}] SCHEDULE_FORCED_SVC_CHECK;loopback;{description};{now}\n")
        yield folder / "status.dat"
    finally:
        core.terminate()
        core.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_shipped_commands_in_a_real_nagios_core(nagios: Path) -> None:
    deadline = time.monotonic() + 90
    status = service_status(nagios)
    while not all(status.get(d, {}).get("has_been_checked") == "1" for d in SERVICES):
        assert time.monotonic() < deadline, {d: s.get("plugin_output") for d, s in status.items()}
        time.sleep(0.5)
        status = service_status(nagios)
    for description, (_, state, line) in SERVICES.items():
        got = status[description]
        print(f"{description}: {got['current_state']} {got['plugin_output']} | {got['performance_data']}")
        assert int(got["current_state"]) == state, (description, got["plugin_output"])
        assert got["plugin_output"].startswith(line), (description, got["plugin_output"])
        assert "Traceback" not in got.get("long_plugin_output", ""), description
    # perfdata the core parsed off the line: the duration in seconds with its thresholds,
    # as check_http gives its 'time'
    assert re.search(r"'[^']+/duration'=\d+\.\d+s;1;2;0;", status["ok"]["performance_data"]), status["ok"]
    assert re.search(r"'[^']+/duration'=0\.[3-9]\d*s;0\.1;5;0;", status["slow"]["performance_data"]), status["slow"]
    assert re.search(r"time=\d+\.\d+s;", status["check_http"]["performance_data"]), status["check_http"]
    # the figure on the status line, as check_http gives one
    assert re.search(r"ok in [\d.]+ ms", status["ok"]["plugin_output"]), status["ok"]["plugin_output"]
    assert "--bogus" in status["typo"]["plugin_output"]
    assert "/nonexistent/probes.yaml" in status["no-file"]["plugin_output"]


ICINGA_SERVICES = {
    # name: (the service's vars, expected state, what the status line starts with)
    "ok": (
        'vars.probe_agent_type = "http"; vars.probe_agent_target = "{url}/ok"; vars.probe_agent_warning = "1s"'
        '; vars.probe_agent_critical = "2s"',
        0,
        "PROBE-AGENT OK - ",
    ),
    "slow": (
        'vars.probe_agent_type = "http"; vars.probe_agent_target = "{url}/slow"; vars.probe_agent_warning = "100ms"',
        1,
        "PROBE-AGENT WARNING - ",
    ),
    "broken": (
        'vars.probe_agent_type = "tcp"; vars.probe_agent_target = "127.0.0.1:9"; vars.probe_agent_timeout = "5"',
        2,
        "PROBE-AGENT CRITICAL - ",
    ),
    "no-file": (
        'vars.probe_agent_config = "/nonexistent/probes.yaml"; vars.probe_agent_probe = [ "web" ]; vars.probe_agent_timeout = "5s"',
        3,
        "PROBE-AGENT UNKNOWN - /nonexistent/probes.yaml",
    ),
}


def test_the_shipped_checkcommand_in_a_real_icinga2(core_install: Path, target: str) -> None:
    if not Path(ICINGA).exists():
        pytest.skip("icinga2-bin not installed (scripts/bootstrap.sh --test installs it)")
    if os.geteuid() != 0:
        pytest.skip("starting Icinga 2 as its own user needs root")
    folder = Path(tempfile.mkdtemp(prefix="icinga2-"))
    for sub in ("data", "log", "cache", "spool", "run", "perf"):
        (folder / sub).mkdir()
    (folder / "probe-agent.conf").write_text(
        SHIPPED_ICINGA.read_text().replace(INSTALLED, str(core_install / "probe-agent"))
    )
    perf = folder / "perf"
    services = "\n".join(
        f'object Service "{name}" {{ host_name = "loopback"; check_command = "probe-agent"; check_interval = 2s; '
        f"{variables.format(url=target)} }}"
        for name, (variables, _, _) in ICINGA_SERVICES.items()
    )
    (folder / "icinga2.conf").write_text(f"""
include <itl>
include "{folder / "probe-agent.conf"}"
object IcingaApplication "app" {{ }}
object CheckerComponent "checker" {{ }}
object PerfdataWriter "results" {{
  service_perfdata_path = "{perf / "service"}"
  service_temp_path = "{perf / "service.tmp"}"
  host_perfdata_path = "{perf / "host"}"
  host_temp_path = "{perf / "host.tmp"}"
  service_format_template = "SERVICE::$service.name$\\tSTATE::$service.state_id$\\tOUTPUT::$service.output$\\tPERF::$service.perfdata$\\tEND"
  rotation_interval = 1s
}}
object Host "loopback" {{ address = "127.0.0.1"; check_command = "dummy"; check_interval = 1h }}
{services}
""")
    for path in [folder, *folder.rglob("*")]:
        shutil.chown(path, "nagios", "nagios")
    paths = [
        f"-D{name}={folder / sub}" for name, sub in (("DataDir", "data"), ("LogDir", "log"), ("CacheDir", "cache"))
    ]
    paths += [f"-DSpoolDir={folder / 'spool'}", f"-DInitRunDir={folder / 'run'}"]
    argv = [ICINGA, "daemon", "-c", str(folder / "icinga2.conf"), *paths, "-DRunAsUser=nagios", "-DRunAsGroup=nagios"]
    validated = subprocess.run([*argv, "-C"], capture_output=True, text=True, timeout=60)
    assert validated.returncode == 0, validated.stdout[-3000:]
    daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        results: dict[str, tuple[int, str, str]] = {}
        deadline = time.monotonic() + 60
        while set(results) != set(ICINGA_SERVICES):
            assert time.monotonic() < deadline and daemon.poll() is None, results
            time.sleep(0.5)
            for written in perf.glob("service.*"):
                text = written.read_text(errors="replace")
                for name, state, output, perfdata in re.findall(
                    r"SERVICE::(.*?)\tSTATE::(\d)\tOUTPUT::(.*?)\tPERF::(.*?)\tEND", text, re.S
                ):
                    results.setdefault(name, (int(state), output, perfdata))
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    for name, (_, state, line) in ICINGA_SERVICES.items():
        got = results[name]
        print(f"{name}: {got}")
        assert got[0] == state and got[1].startswith(line), (name, got)
    assert re.search(r"/duration=\d+\.\d+s;1;2;0;", results["ok"][2]), results["ok"]  # parsed by Icinga
    assert re.search(r"/duration=0\.[3-9]\d*s;0\.1;;0;", results["slow"][2]), results["slow"]

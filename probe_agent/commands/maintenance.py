"""`probe-agent maintenance start|end|list`: a client of a running agent's /-/maintenance."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MaintenanceRequest:
    action: str  # start, end or list
    agent: str  # the agent's base URL
    probes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    duration: str = ""
    reason: str = ""
    name: str = ""
    user: str = ""  # basic auth; the password from $PROBE_AGENT_PASSWORD
    timeout: float = 10.0


def send(wanted: MaintenanceRequest) -> int:
    """Ask the agent, print what it answered; the exit code: 0 done, 1 refused or unreachable,
    2 a usage error."""
    base = wanted.agent.rstrip("/")
    if wanted.action == "start":
        if not wanted.probes and not wanted.tags:
            print("maintenance start: name the probes (--probe) or tags (--tag) it covers", file=sys.stderr)
            return 2
        body = {"probes": wanted.probes, "tags": wanted.tags, "duration": wanted.duration, "reason": wanted.reason}
        if wanted.name:
            body["name"] = wanted.name
        request = urllib.request.Request(
            f"{base}/-/maintenance",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
    elif wanted.action == "end":
        if not wanted.name:
            print("maintenance end: give the window's --name (`maintenance list` shows them)", file=sys.stderr)
            return 2
        request = urllib.request.Request(
            f"{base}/-/maintenance/{urllib.parse.quote(wanted.name, safe='')}", method="DELETE"
        )
    else:
        request = urllib.request.Request(f"{base}/-/maintenance")
    if wanted.user:
        # the password from the environment: a command line is visible to every user of the host
        password = os.environ.get("PROBE_AGENT_PASSWORD", "")
        token = base64.b64encode(f"{wanted.user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=wanted.timeout) as response:
            answer = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read(1 << 16)).get("error") or exc.reason
        except ValueError:
            detail = exc.reason
        print(f"maintenance {wanted.action}: {base} answered {exc.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"maintenance {wanted.action}: cannot reach the agent at {base}: {reason}", file=sys.stderr)
        return 1
    if wanted.action == "list":
        windows = answer.get("windows", [])
        if not windows:
            print("no maintenance windows")
        for window in windows:
            covers = ", ".join([*window["probes"], *(f"tag {t}" for t in window["tags"])])
            state = f"active until {window['until']}" if window.get("active") else "inactive"
            print(
                f"{window['name']} ({window['kind']}): {state}; covers {covers}"
                + (f"; {window['reason']}" if window.get("reason") else "")
            )
    elif wanted.action == "start":
        window = answer["window"]
        print(f"maintenance {window['name']} started, until {window['end']}")
    else:
        print(f"maintenance {wanted.name} ended")
    return 0

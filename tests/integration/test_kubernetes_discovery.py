"""kubernetes_sd_configs against an API-server double (tests/helpers/kube_api.py: list with
resourceVersion, chunked watch events, BOOKMARK, 410 Expired, the API server down), driven by
the real kubernetes_asyncio client in the real daemon."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from probe_agent.config.loader import load_config
from probe_agent.core.errors import ConfigError
from tests.helpers.agent import AgentProcess
from tests.helpers.kube_api import KubeApi, kube_api, kube_object


def config(tmp_path: Path, api: KubeApi) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "target_groups:\n  - name: svc\n"
        f"    kubernetes_sd_configs: [{{api_server: '{api.url}', namespaces: [shop], timeout: 2s}}]\n"
        "    probe: {type: tcp, host: 127.0.0.1, port: '{{target.port}}', interval: 1s, timeout: 500ms,"
        " labels: {service: '{{target.labels.service}}'}}\n"
    )
    return path


def opted_in(port: int) -> dict[str, object]:
    return {
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}, {"name": "admin", "port": 1, "protocol": "TCP"}],
        "annotations": {"probe-agent.io/probe": "svc", "probe-agent.io/port": "http"},
    }


def names(agent: AgentProcess) -> set[str]:
    return {p["name"] for p in agent.health()[1]["probes"]}


def reloads(agent: AgentProcess) -> int:
    return sum(1 for line in agent.logs().splitlines() if '"config reloaded"' in line)


def test_services_opted_in_by_annotation_come_and_go_and_survive_410_and_an_api_server_down(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with kube_api() as api:
        api.put("shop", "web", **opted_in(port))  # type: ignore[arg-type]
        api.put("shop", "quiet", ports=[{"name": "http", "port": port}])  # no annotation: not probed
        api.put("other", "web", **opted_in(port))  # type: ignore[arg-type]  # another namespace
        agent = AgentProcess(config(tmp_path, api), args=["--no-watch-config", "--log-level", "info"]).start()
        try:
            web = f"svc-web.shop.svc:{port}"
            agent.wait_for(lambda: names(agent) == {web}, what="the opted-in Service's probe")
            success = f'probe_success{{probe="{web}",service="web",type="tcp"}} 1.0'
            agent.wait_for(lambda: success in agent.get("/metrics")[1], what="its first run, with its label")
            # annotate one more: a probe within about a second
            started = time.monotonic()
            api.put("shop", "cart", **opted_in(port))  # type: ignore[arg-type]
            cart = f"svc-cart.shop.svc:{port}"
            agent.wait_for(lambda: cart in names(agent), timeout=10, what="the newly annotated Service")
            appeared = time.monotonic() - started
            api.delete("shop", "cart")
            agent.wait_for(lambda: names(agent) == {web}, timeout=10, what="the deleted Service gone")
            # 410: the history compacted under the watch: it lists again, and no probe restarts
            lists, before = api.lists, reloads(agent)
            api.compact()
            agent.wait_for(lambda: api.lists > lists, timeout=10, what="a new list after the 410")
            time.sleep(1)
            assert reloads(agent) == before, "an unchanged list after a 410 reloaded the probes"
            assert "kubernetes watch expired (410): listing again" in agent.logs()
            # the API server down: the last list stays, and says so
            api.set_failing(True)
            agent.wait_for(lambda: "discovery" in agent.health()[1], timeout=15, what="the source failing")
            [trouble] = agent.health()[1]["discovery"]
            assert trouble["state"] == "stale" and "503" in trouble["error"], trouble
            time.sleep(3.5)  # lists asked again after 1 s and 2 s fail too: nothing is taken for an empty list
            assert names(agent) == {web}
            assert "503" in agent.health()[1]["discovery"][0]["error"]
            failures = 'probe_agent_discovery_refresh_failures_total{group="svc",source="kubernetes service shop"}'
            assert failures in agent.get("/metrics")[1]
            api.set_failing(False)
            agent.wait_for(lambda: "discovery" not in agent.health()[1], timeout=20, what="the source back")
            assert names(agent) == {web}
        finally:
            agent.stop()
            listener.close()
    assert appeared < 1.0, f"the annotated Service's probe came {appeared:.2f} s after the change"
    print(f"annotated -> probe: {appeared:.2f} s")


def test_check_lists_once_and_a_source_that_cannot_list_is_a_problem(tmp_path: Path) -> None:
    with kube_api() as api:
        api.put("shop", "web", **opted_in(8080))  # type: ignore[arg-type]
        path = config(tmp_path, api)
        loaded = load_config(path, env={})
        assert [p.name for p in loaded.probes] == ["svc-web.shop.svc:8080"]
        api.set_failing(True)
        try:
            load_config(path, env={})
        except ConfigError as exc:
            [problem] = exc.problems
        else:
            raise AssertionError("a failing API server loaded")
    assert "target_groups[0] (svc)" in problem and "503" in problem, problem


def ingress(
    namespace: str, name: str, hosts: list[str], tls: list[str], annotations: dict[str, str]
) -> dict[str, object]:
    rules = [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}} for h in hosts]
    spec = {"tls": [{"hosts": tls}], "rules": rules}
    return kube_object("Ingress", "networking.k8s.io/v1", namespace, name, spec, annotations)


def probe_object(namespace: str, name: str, module: str, targets: list[str]) -> dict[str, object]:
    return {
        "kind": "Probe",
        "apiVersion": "monitoring.coreos.com/v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "module": module,
            "prober": {"url": "blackbox-exporter.monitoring.svc:9115"},
            "targets": {"staticConfig": {"static": targets, "labels": {"team": "web"}}},
        },
    }


def test_ingresses_opted_in_give_a_target_per_host_with_its_scheme(tmp_path: Path) -> None:
    with kube_api() as api:
        api.put_object(
            "ingresses",
            ingress(
                "shop",
                "front",
                ["shop.example", "*.shop.example", "api.example"],
                ["shop.example"],
                {"probe-agent.io/probe": "edge"},
            ),
        )
        api.put_object("ingresses", ingress("shop", "other", ["x.example"], [], {}))
        path = tmp_path / "probes.yaml"
        path.write_text(
            "target_groups:\n  - name: edge\n"
            f"    kubernetes_sd_configs: [{{role: ingress, api_server: '{api.url}'}}]\n"
            "    probe: {type: http, url: '{{target.labels.scheme}}://{{target.address}}{{target.labels.path}}'}\n"
        )
        config = load_config(path, env={})
    urls = sorted(p.url for p in config.probes)  # type: ignore[attr-defined]
    assert urls == ["http://api.example:80/", "https://shop.example:443/"]


def test_prometheus_operator_probes_of_the_groups_module_are_watched(tmp_path: Path) -> None:
    # a cluster's Probe objects written for blackbox_exporter: the module names the group
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with kube_api() as api:
        api.put_object("probes", probe_object("web", "front", "tcp_connect", [f"127.0.0.1:{port}"]))
        api.put_object("probes", probe_object("web", "else", "http_2xx", ["https://elsewhere.example"]))
        path = tmp_path / "probes.yaml"
        path.write_text(
            "target_groups:\n  - name: tcp_connect\n"
            f"    kubernetes_sd_configs: [{{role: probe, api_server: '{api.url}', namespaces: [web]}}]\n"
            "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1s, timeout: 500ms,"
            " labels: {team: '{{target.labels.team}}'}}\n"
        )
        # a Probe that selects Ingresses, as prometheus-operator's targets.ingress does
        selecting = probe_object("web", "edges", "http_2xx", [])
        selecting["spec"]["targets"] = {  # type: ignore[index]
            "ingress": {"selector": {"matchLabels": {"probe": "yes"}}, "namespaceSelector": {"any": True}}
        }
        api.put_object("probes", selecting)
        shop = ingress("shop", "front", ["shop.example"], ["shop.example"], {})
        shop["metadata"]["labels"] = {"probe": "yes"}  # type: ignore[index]
        api.put_object("ingresses", shop)
        api.put_object("ingresses", ingress("shop", "unlabelled", ["x.example"], [], {}))
        http_group = (
            path.read_text()
            .replace("tcp_connect", "http_2xx")
            .replace(
                "{type: tcp, host: '{{target.host}}', port: '{{target.port}}',", "{type: http, url: '{{target.url}}',"
            )
        )
        http_path = tmp_path / "http.yaml"
        http_path.write_text(http_group)
        urls = sorted(p.url for p in load_config(http_path, env={}).probes)  # type: ignore[attr-defined]
        assert urls == ["https://elsewhere.example", "https://shop.example/"]  # static, and the labelled Ingress
        agent = AgentProcess(path, args=["--no-watch-config"]).start()
        try:
            first = f"tcp_connect-127.0.0.1:{port}"
            agent.wait_for(lambda: names(agent) == {first}, what="the Probe object's target")
            success = f'probe_success{{probe="{first}",team="web",type="tcp"}} 1.0'
            agent.wait_for(lambda: success in agent.get("/metrics")[1], what="its run, with the Probe's label")
            api.put_object("probes", probe_object("web", "front", "tcp_connect", [f"127.0.0.2:{port}"]))
            agent.wait_for(lambda: names(agent) == {f"tcp_connect-127.0.0.2:{port}"}, timeout=10, what="the edit")
            api.delete("web", "front", plural="probes")
            agent.wait_for(lambda: names(agent) == set(), timeout=10, what="the deleted Probe's target gone")
        finally:
            agent.stop()
            listener.close()


def test_credentials_from_a_token_file_or_a_kubeconfig_and_never_shown(tmp_path: Path) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.s3cr3t-service-account-token"
    with kube_api() as api:
        api.token = token
        api.put("shop", "web", **opted_in(8080))  # type: ignore[arg-type]
        (tmp_path / "token").write_text(token + "\n")
        (tmp_path / "wrong").write_text("not-the-token\n")
        (tmp_path / "kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters: [{{name: test, cluster: {{server: '{api.url}'}}}}]\n"
            f"users: [{{name: probe, user: {{token: '{token}'}}}}]\n"
            "contexts: [{name: test, context: {cluster: test, user: probe}}]\n"
        )
        path = tmp_path / "probes.yaml"

        def group(credentials: str) -> Path:
            path.write_text(
                "target_groups:\n  - name: svc\n"
                f"    kubernetes_sd_configs: [{{{credentials}, namespaces: [shop], timeout: 2s}}]\n"
                "    probe: {type: tcp, host: 127.0.0.1, port: '{{target.port}}'}\n"
            )
            return path

        by_token = load_config(group(f"api_server: '{api.url}', bearer_token_file: '{tmp_path / 'token'}'"), env={})
        by_kubeconfig = load_config(group(f"kubeconfig_file: '{tmp_path / 'kubeconfig'}'"), env={})
        try:
            load_config(group(f"api_server: '{api.url}', bearer_token_file: '{tmp_path / 'wrong'}'"), env={})
        except ConfigError as exc:
            [problem] = exc.problems
        else:
            raise AssertionError("a wrong token listed")
    assert [p.name for p in by_token.probes] == [p.name for p in by_kubeconfig.probes] == ["svc-web.shop.svc:8080"]
    assert "401" in problem and "not-the-token" not in problem and token not in problem, problem


def endpoint_slice(namespace: str, service: str, port: int, ready: list[str], unready: list[str]) -> dict[str, object]:
    def endpoint(address: str, is_ready: bool, index: int) -> dict[str, object]:
        return {
            "addresses": [address],
            "conditions": {"ready": is_ready},
            "nodeName": f"node-{index}",
            "targetRef": {"kind": "Pod", "name": f"{service}-{index}"},
        }

    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}, {"name": "admin", "port": 1, "protocol": "TCP"}],
        "endpoints": [endpoint(a, True, i) for i, a in enumerate(ready)]
        + [endpoint(a, False, len(ready) + i) for i, a in enumerate(unready)],
    }


def test_endpointslices_give_a_target_per_ready_pod_of_an_opted_in_service(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with kube_api() as api:
        api.put("shop", "web", **opted_in(port))  # type: ignore[arg-type]
        api.put_object("endpointslices", endpoint_slice("shop", "web", port, ["127.0.0.1", "127.0.0.5"], ["127.0.0.6"]))
        api.put("shop", "quiet", ports=[{"name": "http", "port": port}])  # not opted in: its pods are not probed
        api.put_object("endpointslices", endpoint_slice("shop", "quiet", port, ["127.0.0.7"], []))
        path = tmp_path / "probes.yaml"
        path.write_text(
            "target_groups:\n  - name: svc\n"
            f"    kubernetes_sd_configs: [{{role: endpointslice, api_server: '{api.url}', namespaces: [shop]}}]\n"
            "    probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}', interval: 1s, timeout: 500ms,"
            " labels: {pod: '{{target.labels.pod}}', node: '{{target.labels.node}}'}}\n"
        )
        assert {p.name for p in load_config(path, env={}).probes} == {f"svc-127.0.0.1:{port}", f"svc-127.0.0.5:{port}"}
        agent = AgentProcess(path, args=["--no-watch-config"]).start()
        try:
            agent.wait_for(
                lambda: names(agent) == {f"svc-127.0.0.1:{port}", f"svc-127.0.0.5:{port}"}, what="the two ready pods"
            )
            success = f'probe_success{{node="node-0",pod="web-0",probe="svc-127.0.0.1:{port}",type="tcp"}} 1.0'
            agent.wait_for(lambda: success in agent.get("/metrics")[1], what="the pod's run with its labels")
            # a pod goes away: its slice changes, its probe goes
            api.put_object("endpointslices", endpoint_slice("shop", "web", port, ["127.0.0.1"], []))
            agent.wait_for(
                lambda: names(agent) == {f"svc-127.0.0.1:{port}"}, timeout=10, what="the gone pod's probe gone"
            )
            # the Service stops opting in: its pods' probes go
            api.put("shop", "web", ports=[{"name": "http", "port": port}])
            agent.wait_for(lambda: names(agent) == set(), timeout=10, what="no probes once the annotation is gone")
        finally:
            agent.stop()
            listener.close()


@pytest.mark.parametrize(
    ("how", "expected", "within"),
    [
        ("spew", "over 1,048,576 bytes", 5.0),
        ("hang", "did not answer the list within 1s", 3.0),
        ("garbage", "not a list of service objects", 3.0),
    ],
)
def test_a_hostile_api_server_is_a_failing_source_in_bounded_bytes_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, expected: str, within: float
) -> None:
    from probe_agent.config import kubernetes

    monkeypatch.setattr(kubernetes, "MAX_LIST_BYTES", 1024 * 1024)
    with kube_api() as api:
        api.hostile = how
        path = tmp_path / "probes.yaml"
        path.write_text(
            "target_groups:\n  - name: svc\n"
            f"    kubernetes_sd_configs: [{{api_server: '{api.url}', timeout: 1s}}]\n"
            "    probe: {type: tcp, host: 127.0.0.1, port: '{{target.port}}'}\n"
        )
        started = time.monotonic()
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        took = time.monotonic() - started
    [problem] = info.value.problems
    assert expected in problem, problem
    assert took < within, f"{how}: {took:.1f} s"


async def test_a_watch_whose_client_could_not_be_made_recovers_and_says_so(tmp_path: Path) -> None:
    # The kubeconfig is not there yet (a Secret mounted late): the source fails, then, once the
    # file is there, lists, and its error is gone.
    import asyncio

    from probe_agent.config.sources import SourceState
    from probe_agent.runtime.kubernetes import ServiceWatch
    from probe_agent.schema.discovery import KubernetesSdConfig

    with kube_api() as api:
        api.put("shop", "web", **opted_in(8080))  # type: ignore[arg-type]
        kubeconfig = tmp_path / "kubeconfig"
        sd = KubernetesSdConfig(kubeconfig_file=str(kubeconfig), namespaces=["shop"], timeout=2)
        seen: list[SourceState] = []
        watch = ServiceWatch(("svc", "kubernetes service shop"), sd, "shop", lambda _k, state: seen.append(state))
        task = asyncio.create_task(watch.run())
        try:
            for _ in range(50):
                await asyncio.sleep(0.05)
                if seen:
                    break
            assert seen and seen[-1].error is not None and "kubeconfig" in seen[-1].error, seen
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                f"clusters: [{{name: t, cluster: {{server: '{api.url}'}}}}]\n"
                "users: [{name: u, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: u}}]\n"
            )
            for _ in range(100):
                await asyncio.sleep(0.05)
                if seen[-1].error is None and seen[-1].targets:
                    break
            assert seen[-1].error is None and [t[0] for t in seen[-1].targets] == ["web.shop.svc:8080"], seen[-1]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def httproute(
    namespace: str, name: str, hosts: list[str], paths: list[str], annotations: dict[str, str]
) -> dict[str, object]:
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": p}}]} for p in paths]
    spec = {"parentRefs": [{"name": "edge-gateway"}], "hostnames": hosts, "rules": rules}
    return kube_object("HTTPRoute", "gateway.networking.k8s.io/v1", namespace, name, spec, annotations)


def test_gateway_api_httproutes_opted_in_give_a_target_per_hostname_and_path(tmp_path: Path) -> None:
    with kube_api() as api:
        opted = {"probe-agent.io/probe": "routes", "probe-agent.io/scheme": "https"}
        api.put_object("httproutes", httproute("shop", "store", ["shop.example", "*.example"], ["/", "/cart"], opted))
        api.put_object("httproutes", httproute("shop", "other", ["x.example"], ["/"], {}))
        path = tmp_path / "probes.yaml"
        path.write_text(
            "target_groups:\n  - name: routes\n"
            f"    kubernetes_sd_configs: [{{role: httproute, api_server: '{api.url}', namespaces: [shop]}}]\n"
            # two paths of one host are one address: the name says the path, or they are one probe
            "    probe: {type: http, name: '{{target.address}}{{target.labels.path}}',"
            " url: '{{target.labels.scheme}}://{{target.address}}{{target.labels.path}}', interval: 1m}\n"
        )
        urls = sorted(p.url for p in load_config(path, env={}).probes)  # type: ignore[attr-defined]
        assert urls == ["https://shop.example:443/", "https://shop.example:443/cart"]
        agent = AgentProcess(path, args=["--no-watch-config"]).start()
        try:
            agent.wait_for(lambda: len(names(agent)) == 2, what="the route's two paths")
            api.put_object("httproutes", httproute("shop", "store", ["shop.example"], ["/"], opted))
            agent.wait_for(lambda: names(agent) == {"shop.example:443_"}, timeout=10, what="the edited route")
        finally:
            agent.stop()

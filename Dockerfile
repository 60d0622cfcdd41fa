# The Python the tests run on (3.11.7), on Debian bookworm like the test machines.
FROM python:3.11.7-slim-bookworm
WORKDIR /app
# The dependency layer first: a source change rebuilds only the layer after it.
# constraints.txt pins every package to the version the tests ran with (scripts/lock.sh).
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir probe_agent && touch probe_agent/__init__.py \
    && pip install --no-cache-dir -c constraints.txt ".[all]" && pip uninstall -y probe-agent
COPY probe_agent ./probe_agent
RUN pip install --no-cache-dir --no-deps -c constraints.txt . && useradd --system --uid 10001 --gid 0 probe \
    && install -d -o 10001 -g 0 /var/lib/probe-agent   # the status page's history over restarts
# Numeric, so Kubernetes can verify runAsNonRoot without resolving a name.
USER 10001:0
EXPOSE 9110
# The agent checks itself: its liveness endpoint, through an ad-hoc check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["probe-agent", "check", "http", "http://127.0.0.1:9110/health/live", "-t", "3s"]
ENTRYPOINT ["probe-agent"]
CMD ["run", "-c", "/etc/probe-agent/probes.yaml", "--listen", "0.0.0.0:9110"]

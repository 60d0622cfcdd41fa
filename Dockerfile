FROM python:3.11-slim
WORKDIR /app
# The dependency layer first: a source change rebuilds only the layer after it.
COPY pyproject.toml README.md ./
RUN mkdir probe_agent && touch probe_agent/__init__.py \
    && pip install --no-cache-dir . && pip uninstall -y probe-agent
COPY probe_agent ./probe_agent
RUN pip install --no-cache-dir --no-deps . && useradd --system --uid 10001 --gid 0 probe
# Numeric, so Kubernetes can verify runAsNonRoot without resolving a name.
USER 10001:0
EXPOSE 9464
# The agent checks itself: its liveness endpoint, through an ad-hoc check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["probe-agent", "check", "http", "http://127.0.0.1:9464/health/live", "-t", "3s"]
ENTRYPOINT ["probe-agent"]
CMD ["run", "-c", "/etc/probe-agent/probes.yaml", "--listen", "0.0.0.0:9464"]

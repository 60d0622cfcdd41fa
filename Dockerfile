FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY probe_agent ./probe_agent
RUN pip install --no-cache-dir . && useradd --system --uid 10001 probe
USER probe
EXPOSE 9464
ENTRYPOINT ["probe-agent"]
CMD ["run", "-c", "/etc/probe-agent/probes.yaml", "--listen", "0.0.0.0:9464"]

"""probe-agent: synthetic probes and health checks, exported to Prometheus."""

__version__ = "0.2.0"

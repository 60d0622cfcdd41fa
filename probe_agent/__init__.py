"""probe-agent: synthetic probes and health checks, exported to Prometheus."""

__version__ = "0.2.0"
# what every HTTP request the agent makes to a target says it is
USER_AGENT = f"probe-agent/{__version__}"

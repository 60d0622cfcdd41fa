"""The built-in probe types, one module each, named as its YAML `type` (listed in
probe_agent.probes.registry)."""

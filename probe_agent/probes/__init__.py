"""Layer 2, the probes: what a probe type is (base), the types by name (registry), the built-in
types (types/, one module each) and the clients several types share (clients/).

Adding a built-in type is adding its module under types/ (with `PROBE = ItsProbeClass`; see
probe_agent.probes.base for what a type declares) and its name in registry.BUILTIN; an
out-of-tree type is an entry point (see probe_agent.probes.registry)."""

from probe_agent.probes.registry import PROBE_TYPES, REGISTRY, close_shared

__all__ = ["PROBE_TYPES", "REGISTRY", "close_shared"]

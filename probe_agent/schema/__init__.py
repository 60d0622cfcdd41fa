"""Layer 1, the typed pieces of a probes file that every probe and the agent config share:
field types (durations, sizes, thresholds), remediation hooks, maintenance windows, SLOs. Schemas
only: what acts on them lives in runtime and outputs."""

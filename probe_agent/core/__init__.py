"""Layer 0, the vocabulary: results and statuses, failure reasons, units, redaction, and the
readers of outside input (YAML, named files, JSONPath, the per-run byte budget). Imports nothing
else of probe_agent."""

"""Layer 4, the running agent: one probe run (runner), their schedule (scheduler), what the
agent knows of each probe (state, history), its own metrics, the reloads (agent, watch) and
remediation."""

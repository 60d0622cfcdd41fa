"""Layer 5, what the agent tells people and programs: the /metrics exposition, check reports
(table, JSON, Nagios, JUnit, Prometheus text), the status page and the generated rules."""

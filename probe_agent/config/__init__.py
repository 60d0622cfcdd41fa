"""Layer 3, the agent config: a probes file parsed and validated into an AgentConfig (every
probe by its type's own config class), and which probes this replica runs (sharding)."""

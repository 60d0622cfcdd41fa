"""Where the probes file is and how large it may be: what the command line needs to describe
itself (`--help`) before anything heavier loads. Imports nothing."""

DEFAULT_CONFIG_PATH = "probes.yaml"
CONFIG_ENV_VAR = "PROBE_AGENT_CONFIG"
MAX_CONFIG_BYTES = 8 * 1024 * 1024

"""Layer 6, the one-shot commands: `check` (run once, report, exit like a Nagios plugin) and
`wait` (until ready). Same runner as the daemon."""

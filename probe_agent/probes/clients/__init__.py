"""What several probe types share: the HTTP client, the datastore probes' base, the NATS
client, TLS contexts and connection details."""

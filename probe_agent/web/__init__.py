"""Layer 6, the daemon's HTTP face: the routes, web config (TLS, basic auth) and the bounds on
connections to the agent's port."""

"""Ray actors and Serve deployments: thin wrappers over edit_rl."""

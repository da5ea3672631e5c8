"""Control-socket commands, one module per domain; ``core`` builds the server and registers them all."""

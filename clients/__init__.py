"""s2gesture clients: replay, listen, status, robot controller example, live evaluation. Never torch."""

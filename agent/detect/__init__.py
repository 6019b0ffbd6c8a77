"""Detection: pure functions from (observation, state) to alerts. No I/O here."""

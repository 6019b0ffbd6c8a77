"""The agent's one ordered pipeline: sensors -> ObservationQueue -> Dispatcher -> record -> detect -> store."""

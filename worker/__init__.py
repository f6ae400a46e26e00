"""The worker: takes stored jobs and runs them on the engine, in a process of its own."""

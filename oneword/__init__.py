"""OneWord's command line: one entry point for the engine, bot, playground and benchmarks."""

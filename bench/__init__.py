"""Load-test tool and benchmark suite (see BENCHMARKS.md and the README, "Performance")."""

"""Runners, timing and targets for profiling models where they run."""

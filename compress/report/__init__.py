"""Benchmark tables (Markdown, CSV, JSON) and the accuracy-vs-latency plot."""

"""Benchmarks: accuracy and speed of the inference pipeline, task latency, vector search (results in bench/results)."""

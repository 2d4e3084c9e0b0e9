"""Model runners: one interface, two runtimes (ONNX Runtime in process, Triton over gRPC)."""

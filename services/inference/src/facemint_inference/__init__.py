"""The inference service: face detection, alignment, embeddings, landmarks and attributes."""

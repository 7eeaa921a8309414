"""Offline training: labelled data -> embeddings -> calibrated heads -> one ONNX graph."""

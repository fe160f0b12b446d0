"""Federated-learning rules of the STF: epoch evaluation on quantized updates."""

"""Flower ServerApp: the coordinator's round loop, validation, aggregation, checkpoints."""

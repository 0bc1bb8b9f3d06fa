"""Flower ClientApp for data owners and the curator."""

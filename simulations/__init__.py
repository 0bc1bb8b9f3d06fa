"""Entry points: local simulation backends, the ``fedcurate`` CLI, benchmarks."""

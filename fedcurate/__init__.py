"""fedcurate: privacy-preserving federated learning with data curation.

The library holds the pure pieces (configuration, data, models, privacy, crypto,
curation, reporting); the Flower apps in ``server/`` and ``clients/`` wire them
together and import from here, never the other way round.
"""

__version__ = "0.1.0"

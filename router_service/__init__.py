"""learned-router: an OpenAI-compatible service that routes each request to a local,
primary-cloud or strong-cloud model using a learned, calibrated scorer."""

__version__ = "0.1.0"

"""HTTP layer: route modules (glue) over the plain functions in ``pipeline``."""

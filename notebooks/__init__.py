"""Notebooks that show the learned router against the heuristic (``notebooks/*.ipynb``),
and ``execute``: runs them with nbclient (``make notebooks`` / ``make notebooks-check``)."""

"""Evaluate stage: corpus + exported model -> metrics, evaluation report, gate metrics, model card.

* ``metrics``: predictions + labels -> routing, calibration and intent metrics.
* ``report``: (corpus, exported model) -> evaluation report.
* ``gate_eval``: config + models -> the gate's metrics on one fixed held-out set.
* ``model_card``: (manifest, evaluation report) -> ``MODEL_CARD.md``.
"""

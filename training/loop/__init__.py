"""Feedback loop stage: decision log -> judge feedback -> retrained candidate -> gated promotion.

* ``judge``: logged cheap-tier exchanges -> judge verdicts in the ``feedback`` table.
* ``judge_calls``: one judge chat call (rate limit, retries, cost) and the spend budget.
* ``judge_cli``: ``learned-router judge`` arguments -> a judge run.
* ``judge_prompts``: logged exchange -> judge prompt; judge reply -> parsed verdict.
* ``gate``: (candidate metrics, champion metrics, tolerances) -> promote or not.
* ``retrain``: decision log + feedback -> candidate model -> gated promotion.
* ``registry``: training run -> MLflow run + model version; served model -> ``champion`` alias.
* ``feedback_dataset``: decision log + feedback table -> training files.
"""

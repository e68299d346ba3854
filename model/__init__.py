"""Character-level recurrent model: batching, network, training loop, sampling, evaluation.

Depends on `corpora` only; knows nothing of `search` and nothing of Ray (the Ray Tune trainable
that runs this loop in a trial is `search.engine.trainable`).
"""

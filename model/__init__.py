"""Character-level recurrent model: batching, network, training loop, Tune trainable, sampling.

Depends on `corpora` only; knows nothing of `search`. Ray is imported in `model.trainable` alone.
"""

"""The one error type of `model`: a setting a user gave that cannot work."""


class ConfigError(ValueError):
    """An invalid hyperparameter or setting; its message is one line naming the problem."""

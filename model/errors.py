"""The one error type of `model`: a setting a user gave that cannot work."""

from corpora.errors import UserError


class ConfigError(UserError):
    """An invalid hyperparameter or setting; its message is one line naming the problem."""

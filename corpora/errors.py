"""The one exception type for corpus problems a user can cause (bad name, bad file, bad download).

It subclasses ValueError so callers that already catch ValueError keep working; the CLI turns it
into a single "error: ..." line and exit status 2.
"""


class CorpusError(ValueError):
    """A corpus problem a user can cause; the message is one line naming the problem."""

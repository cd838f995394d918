"""The one error type of the device runtime: a problem the user can fix, printed on one line."""


class AgentError(Exception):
    """A problem the user can fix (missing library, wrong input, incompatible engine)."""

"""Exceptions whose message is the one line a user reads."""


class CompressgateError(Exception):
    """Base class: the message names the file, field or model and what was expected."""


class UserInputError(CompressgateError):
    """Bad input from the user (a file, a name, a config field); never a traceback."""


class BaselineError(UserInputError):
    """A baseline file that cannot be read: malformed, wrong schema or missing keys."""

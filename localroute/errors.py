"""One exception family, so the CLI can print one clear line and exit non-zero."""


class LocalrouteError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class DataError(LocalrouteError):
    """A source file is missing or malformed; the message names the file and the problem."""


class ConfigError(LocalrouteError):
    """A configuration value is missing or invalid; the message names the field."""

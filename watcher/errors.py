"""The daemon's own errors (stdlib only), under the project's ``UnetMattingError``."""

from __future__ import annotations

from engine.errors import UnetMattingError


class ConfigError(UnetMattingError):
    """The configuration is invalid; the message names the key path."""


class AlreadyRunning(UnetMattingError):
    """Another daemon holds the instance lock of this ``paths.state``."""


class FetchError(UnetMattingError):
    """A model could not be fetched or did not verify; the message says why."""

"""One error tree for the package.

`IroError` is the base. The CLI turns any `IroError` into one clear line and a non-zero exit.
`TransientError` is worth retrying (rate limits, 5xx, timeouts, resets, malformed replies);
everything else is permanent and fails fast.
"""

from __future__ import annotations


class IroError(Exception):
    """Base class of every error iro-bb raises on purpose."""

    exit_code = 1


class InputError(IroError):
    """Bad user input: a data file, a spec, an option value."""

    exit_code = 2


class ConfigError(InputError):
    """An invalid configuration value (names the parameter and the bad value)."""


class ModelNotFoundError(InputError):
    """A model (or value-model backbone) that cannot be found, with how to install it."""


class StoreError(IroError):
    """The database cannot be used: newer schema, foreign database, unreachable URL."""


class ProviderError(IroError):
    """A provider failed."""


class TransientError(ProviderError):
    """A failure worth retrying: 429, 408, 5xx, timeout, connection reset, malformed reply."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """A failure that retrying cannot fix: 400, 401, 403, 404, ..."""


class GraderError(IroError):
    """A grader failed on one sample (recorded on the rollout, never fatal for a run)."""


class Cancelled(IroError):
    """Work stopped at a safe point because cancellation was requested."""


class BudgetExceeded(IroError):
    """The next request would spend past a limit the run was given (--max-cost, --max-requests,
    --max-output-tokens). Raised before the request is sent; everything so far is stored."""

    exit_code = 3

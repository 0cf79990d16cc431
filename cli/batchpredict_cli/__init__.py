"""The `batchpredict` CLI and its client library for the batch-prediction HTTP API (docs/API.md)."""

from batchpredict_cli.client import ApiError, ApiUnreachable, Client, ClientConfigError

__all__ = ["ApiError", "ApiUnreachable", "Client", "ClientConfigError"]

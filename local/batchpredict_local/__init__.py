"""The local stack: the whole system on one machine, no AWS account, no Docker.

``LocalStack`` (stack.py) runs moto, an API Gateway-like HTTP front, SQS pollers and a schedule
timer, all wired from template.yaml; ``batchpredict-local serve`` runs it in the foreground.
"""

from batchpredict_local.errors import LocalStackError, TemplateError
from batchpredict_local.stack import LocalStack

__all__ = ["LocalStack", "LocalStackError", "TemplateError"]

"""Errors of the local stack."""


class LocalStackError(Exception):
    """The local stack cannot start or run as asked."""


class TemplateError(LocalStackError):
    """template.yaml declares something the local stack cannot read or emulate."""

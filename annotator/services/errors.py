class ServiceError(Exception):
    """A request the domain refuses, with a message fit for the user."""


class PermissionDenied(ServiceError):
    pass


class Conflict(ServiceError):
    """The request was made against stale state (e.g. an annotation version)."""

"""Checks of middleware options: each raises ValueError with the option's
name, what it expects and the value, which the chain turns into one line
(``fastcore: error: middleware FACTORY: option NAME: expected ..., got ...``)."""

__all__ = ["check_bool", "check_int", "check_header_name", "check_strings"]

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _refuse(name, expected, value):
    raise ValueError(f"option {name}: expected {expected}, got {value!r}")


def check_int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        _refuse(name, f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}",
                value)
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        _refuse(name, "true or false", value)
    return value


def check_header_name(name, value):
    if not isinstance(value, str) or not value or not set(value) <= _TOKEN or "_" in value:
        _refuse(name, "a header name (letters, digits and '-')", value)
    return value


def check_strings(name, value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) and item for item in value):
        _refuse(name, "a list of strings", value)
    return tuple(value)

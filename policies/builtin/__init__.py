"""Built-in policies; importing this package registers them."""

from policies.builtin import immediate, run_now, window

__all__ = ["immediate", "run_now", "window"]

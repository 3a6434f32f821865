"""Built-in policies; importing this package registers them."""

from policies.builtin import run_now

__all__ = ["run_now"]

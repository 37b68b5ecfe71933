"""The policy server: a thin HTTP shell over an in-process decision service."""

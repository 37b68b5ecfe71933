"""The policy server: features, routing, policy, safety and exploration behind HTTP."""

"""Watching agents in production: detectors, alerts, delivery and guardrails."""

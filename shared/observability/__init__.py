"""Metrics, traces and structured logs shared by every Proteus process."""

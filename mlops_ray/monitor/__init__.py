"""Monitoring: drift of captured traffic against the training reference, its report, and what to do about it."""

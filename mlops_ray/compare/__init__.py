"""Comparing two registered versions: what changed in their inputs, and the report that shows it."""

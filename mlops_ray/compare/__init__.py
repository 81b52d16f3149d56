"""Comparing two registered versions (``mlops-ray report``): what changed between them, and the report."""

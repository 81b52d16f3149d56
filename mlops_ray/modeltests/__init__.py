"""Behavioural model tests: the ``model_tests`` section and the checks it declares."""

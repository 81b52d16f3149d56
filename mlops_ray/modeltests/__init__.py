"""Behavioural model tests: the checks the ``model_tests`` section declares, their results, ``mlops-ray test-model``."""

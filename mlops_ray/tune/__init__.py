"""Hyperparameter sweeps on Ray Tune: ``stage.py`` is ``mlops-ray tune``, ``sweep.py`` the sweep it runs."""

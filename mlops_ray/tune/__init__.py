"""Hyperparameter sweeps on Ray Tune; the entry point is ``mlops_ray.tune.sweep.run_sweep``."""

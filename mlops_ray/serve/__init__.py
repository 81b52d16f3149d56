"""Ray Serve: the HTTP endpoint in front of a registered model."""

from mlops_ray.serve.deploy import Endpoint, deploy_model, wait_for_stop_signal

__all__ = ["Endpoint", "deploy_model", "wait_for_stop_signal"]

"""Ray Serve: the HTTP endpoint in front of a registered model."""

from mlops_ray.serve.deploy import Endpoint, ServeStart, deploy_model, start_serve, wait_for_stop_signal

__all__ = ["Endpoint", "ServeStart", "deploy_model", "start_serve", "wait_for_stop_signal"]

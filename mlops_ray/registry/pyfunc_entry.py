"""Models-from-code entry point that MLflow executes to load the packaged model.

MLflow copies this file into the model artifact and runs it on load instead of
unpickling a Python object; it must do nothing but name the model instance.
"""

from mlflow.models import set_model

from mlops_ray.registry.packaged_model import PackagedModel

set_model(PackagedModel())

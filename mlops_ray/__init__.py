"""mlops-ray: the ML lifecycle on Ray, tied together by MLflow.

Importing the package is cheap and has no side effects: no Ray, no MLflow, no
files. The heavy entry points live in their modules (``mlops_ray.pipeline.run``).
"""

from mlops_ray.config import Config, load_config
from mlops_ray.errors import ConfigError, DataError, MlopsError, ServiceUnavailableError

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "DataError", "MlopsError", "ServiceUnavailableError", "__version__", "load_config"]

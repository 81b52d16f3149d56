"""Promotion: the gate policy (``gate.py``) and ``mlops-ray promote`` (``stage.py``), which moves ``@champion``."""

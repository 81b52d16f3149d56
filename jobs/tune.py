"""Entrypoint for ``ray job submit``: a hyperparameter sweep (``mlops-ray tune``), optionally resumed.

From the repository root (the job fails with the command's own message and exit code):

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/tune.py --config configs/sweep.yaml
"""

from __future__ import annotations

from common import run_resumable


def main() -> None:
    run_resumable("tune", __doc__.splitlines()[0], "finish the latest unfinished sweep")


if __name__ == "__main__":
    main()

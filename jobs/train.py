"""Entrypoint for ``ray job submit``: one training run (``mlops-ray train``), optionally resumed.

From the repository root (the job fails with the command's own message and exit code):

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/train.py --config configs/quickstart.yaml
"""

from __future__ import annotations

from common import run_resumable


def main() -> None:
    run_resumable("train", __doc__.splitlines()[0], "continue the latest unfinished training run")


if __name__ == "__main__":
    main()

"""Entrypoint for ``ray job submit``: one training run (``mlops-ray train``), optionally resumed or registered.

From the repository root (the job fails with the command's own message and exit code):

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/train.py --config configs/quickstart.yaml
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--resume", action="store_true", help="continue the latest unfinished training run")
    arguments.add_argument("--register", action="store_true", help="register it as a new version @challenger")
    args = arguments.parse_args()
    run(["train"], args, *(["--resume"] if args.resume else []), *(["--register"] if args.register else []))


if __name__ == "__main__":
    main()

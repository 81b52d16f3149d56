"""Entrypoint for ``ray job submit``: a hyperparameter sweep (``mlops-ray tune``), optionally resumed.

From the repository root (the job fails with the command's own message and exit code):

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/tune.py --config configs/sweep.yaml
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--resume", action="store_true", help="finish the latest unfinished sweep")
    args = arguments.parse_args()
    run(["tune"], args, *(["--resume"] if args.resume else []))


if __name__ == "__main__":
    main()

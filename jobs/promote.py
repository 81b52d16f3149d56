"""Entrypoint for ``ray job submit``: the promotion gate (``mlops-ray promote``); exit 3 on REJECT.

From the repository root (the job fails with the command's own message and exit code):

    ray job submit --runtime-env jobs/runtime_env.yaml -- python jobs/promote.py --config configs/quickstart.yaml
"""

from __future__ import annotations

from common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", help="name@alias or name/version; default: the config's model @challenger")
    arguments.add_argument("--rollback", action="store_true", help="point @champion back at the previous champion")
    args = arguments.parse_args()
    extra = (["--model", args.model] if args.model else []) + (["--rollback"] if args.rollback else [])
    run(["promote"], args, *extra)


if __name__ == "__main__":
    main()

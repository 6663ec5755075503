#!/usr/bin/env python3
"""Starts gitlab-python-runner, a runner written by a third party in pure
Python (PyPI: gitlab-python-runner==14.3.20 with gitlab-emulator==1.1.9, as
.ci/run installs them), with the config.toml that `session-harness conform`
writes: its own configuration is a YAML file (server, token, executor, shell,
dir), which this turns the config.toml's first [[runners]] into.

    python3 harness/tests/foreign/python_runner.py CONFIG.toml

It ignores [session_server]: that runner has no session server.
"""

import json
import os
import sys
import tempfile
import tomllib


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python_runner.py CONFIG.toml")
    with open(sys.argv[1], "rb") as f:
        config = tomllib.load(f)
    runners = config.get("runners") or []
    if not runners:
        sys.exit(f"{sys.argv[1]}: no [[runners]] section")
    runner = runners[0]
    builds = tempfile.mkdtemp(prefix="python-runner-")
    own = {
        "server": runner["url"].rstrip("/"),
        "token": runner["token"],
        "executor": runner.get("executor", "shell"),
        "dir": builds,
        # Its own default, which its config must nonetheless name.
        "shell": runner.get("shell", "bash"),
    }
    path = os.path.join(builds, "gitlab-runner.yml")
    with open(path, "w") as f:
        # JSON is YAML: no YAML writer needed here.
        json.dump(own, f)
    # exec: the harness's signals reach the runner itself.
    os.execv(sys.executable, [sys.executable, "-u", "-m", "GitlabPyRunner", "--start", path])


if __name__ == "__main__":
    main()

"""``python -m agents.cli``: the ``streamdq`` command."""

from agents.cli.main import main

main()

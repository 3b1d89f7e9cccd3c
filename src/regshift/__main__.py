"""``python -m regshift``."""

from .cli.main import main

main()

"""The ``regshift`` command-line interface (click); the only layer that prints or exits."""

"""Test harness: the real CNCF distribution registry on loopback, plus a token server.

Modules:
    imports: what a ``regshift tag`` process must not import (the tag test and the benchmark).
    pki: throw-away CA, server certificate and token-signing key (``cryptography``).
    registry: :class:`~harness.registry.RegistryServer`, one ``docker-registry serve`` process.
    tokenserver: :class:`~harness.tokenserver.TokenServer`, a JWT token service for ``auth.token``.
"""

"""Flags every registry command shares, gathered into one object."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..client import Client, ClientOptions
    from ..manifests import Platform

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class CommonOptions:
    """Parsed common flags; builds the library client."""

    username: str | None = None
    password_stdin: bool = False
    insecure: bool = False
    ca_file: str | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    retries: int | None = None
    json: bool = False
    debug: bool = False
    registries: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def client_options(self, *, with_keychain: bool = True) -> ClientOptions:
        """Library options from the flags."""
        from ..auth.credentials import ChainKeychain, Credential, StaticKeychain, default_keychain
        from ..client import ClientOptions
        from ..transport import TransportOptions

        transport = TransportOptions(
            insecure=frozenset(self.registries) if self.insecure else frozenset(),
            ca_file=self.ca_file,
            headers=with_config_headers(self.headers),
        )
        if self.timeout:
            transport = replace(transport, read_timeout=self.timeout)
        if self.connect_timeout:
            transport = replace(transport, connect_timeout=self.connect_timeout)
        if self.retries is not None:
            transport = replace(transport, retries=self.retries)
        keychain = None
        if with_keychain and self.username:
            password = self.password if self.password is not None else read_password(self)
            flags = StaticKeychain(
                Credential(username=self.username, password=password, source="flags")
            )
            keychain = ChainKeychain(flags, default_keychain())
        return ClientOptions(transport=transport, keychain=keychain)

    def client(self) -> Client:
        """A client configured from the flags."""
        from ..client import Client
        from .process import start_up_done

        client = Client(self.client_options())
        start_up_done()
        return client

    def emit(self, doc: object, text: str) -> None:
        """Print the result: JSON with --json, else the text (if any)."""
        if self.json:
            click.echo(json.dumps(doc, indent=2))
        elif text:
            click.echo(text)


def read_password(opts: CommonOptions) -> str:
    """The password from stdin (--password-stdin) or a hidden prompt on a terminal."""
    if opts.password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        value = click.prompt("Password", hide_input=True, err=True)
    else:
        raise click.UsageError("--username needs --password-stdin when stdin is not a terminal")
    if not value:
        raise click.UsageError("empty password")
    opts.password = value
    return value


def common_options(func: F) -> F:
    """Add the shared flags to a command and pass them as a :class:`CommonOptions`."""

    @click.option("-u", "--username", help="Registry user name (password via --password-stdin).")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    @click.option(
        "--insecure",
        is_flag=True,
        help="Allow plain HTTP and unverified TLS for the registries named here.",
    )
    @click.option("--ca-file", metavar="PATH", help="Extra CA certificates (PEM).")
    @click.option(
        "--timeout", type=click.FloatRange(min=0.1), help="Read timeout in seconds (default 60)."
    )
    @click.option(
        "--connect-timeout",
        type=click.FloatRange(min=0.1),
        help="Connect timeout in seconds (default 10).",
    )
    @click.option(
        "--retries",
        type=click.IntRange(0, 20),
        help="Retries of a failed idempotent request (default 3).",
    )
    @click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="'NAME: VALUE'",
        help="Extra header for the registries' own hosts, e.g. an API key (repeatable).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON document (for CI).")
    @click.option("--debug", is_flag=True, help="Log HTTP requests (secrets redacted) to stderr.")
    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        opts = CommonOptions(
            username=kwargs.pop("username"),
            password_stdin=kwargs.pop("password_stdin"),
            insecure=kwargs.pop("insecure"),
            ca_file=kwargs.pop("ca_file"),
            timeout=kwargs.pop("timeout"),
            connect_timeout=kwargs.pop("connect_timeout"),
            retries=kwargs.pop("retries"),
            json=kwargs.pop("as_json"),
            debug=kwargs.pop("debug"),
            headers=parse_headers(kwargs.pop("headers")),
        )
        if opts.password_stdin and not opts.username:
            raise click.UsageError("--password-stdin needs -u/--username")
        if opts.ca_file is not None:
            check_ca_file(opts.ca_file)
        opts.registries = _registries_of(kwargs)
        return func(opts, **kwargs)

    return wrapper  # type: ignore[return-value]


def with_config_headers(flags: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``--header`` flags after Docker's ``config.json`` ``HttpHeaders``: a flag replaces a
    configured header of the same name; a configured header regshift cannot send (a name it
    sets itself, CR/LF in the value) is left out with a warning naming it, never its value."""
    from ..auth.credentials import docker_http_headers
    from ..transport import check_header

    given = {name.lower() for name, _ in flags}
    kept: list[tuple[str, str]] = []
    for name, value in docker_http_headers():
        if name.lower() in given or name.lower() in (n.lower() for n, _ in kept):
            continue
        try:
            check_header(name, value)
        except ValueError as exc:
            click.echo(f"regshift: warning: config.json HttpHeaders: {exc}; left out", err=True)
            continue
        kept.append((name, value))
    return (*kept, *flags)


def parse_platforms(values: Sequence[str]) -> tuple[Platform, ...]:
    """``--platform`` values as :class:`Platform` s; a usage error for a malformed one."""
    from ..manifests import Platform

    try:
        return tuple(Platform.parse(p) for p in values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def transfer_options(func: F) -> F:
    """``-j/--jobs``, ``-v/--verbose`` and ``-q/--quiet``: the flags of every command that
    moves blobs (copy, the build commands, index)."""
    options = (
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(1, 64),
            default=None,
            help="Blobs transferred at once (default: 2 per core, 4 to 8).",
        ),
        click.option(
            "-v", "--verbose", is_flag=True, help="Report each blob on stderr (also without a TTY)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress display."),
    )
    for option in reversed(options):
        func = option(func)
    return func


def parse_headers(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``--header 'Name: value'`` flags as pairs; a usage error (never echoing the value)
    when one is malformed, reserved or repeated."""
    from ..transport import check_header

    pairs: list[tuple[str, str]] = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise click.UsageError("--header takes 'NAME: VALUE'")
        pair = (name.strip(), rest.strip(" \t"))
        try:
            check_header(*pair)
        except ValueError as exc:
            raise click.UsageError(f"--header: {exc}") from None
        if pair[0].lower() in (n.lower() for n, _ in pairs):
            raise click.UsageError(f"--header: {pair[0]} is given more than once")
        pairs.append(pair)
    return tuple(pairs)


def check_ca_file(path: str) -> None:
    """Refuse an unusable ``--ca-file`` before anything is sent, whatever the registries'
    schemes (a plain-HTTP registry never loads it, and must not hide a typo either)."""
    from ..transport import check_ca_file as load

    try:
        load(path)
    except ValueError as exc:
        raise click.UsageError(f"--ca-file {path}: {exc}") from None


def endpoints_of(references: Iterable[str]) -> list[str]:
    """The registries of the references that parse (the others fail where they are used)."""
    from ..errors import InvalidReference
    from ..reference import parse_reference

    found = []
    for text in references:
        with contextlib.suppress(InvalidReference):
            found.append(parse_reference(text, default_tag=None).endpoint)
    return found


def _registries_of(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """Registries named by the command's arguments (for --insecure)."""
    from ..errors import InvalidReference
    from ..reference import normalise_registry

    names: list[str] = []
    keys: tuple[str, ...] = ("source", "reference", "repository", "destinations", "to")
    keys += ("base", "images", "image", "old_base", "new_base", "config_from")  # build verbs
    for key in keys:
        values = kwargs.get(key)
        names += endpoints_of((values,) if isinstance(values, str) else values or ())
    if isinstance(kwargs.get("registry"), str):
        with contextlib.suppress(InvalidReference):
            names.append(normalise_registry(kwargs["registry"]))
    return tuple(names)

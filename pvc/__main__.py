"""pvc: one executable for the node daemon, the API server and the command-line client.

Usage:
  pvc [options] <group> [<args>...]
  pvc --version
  pvc -h | --help

Groups:
  node          the node daemon (pvc node run) and node commands
  api           the REST API server (pvc api serve)
  vm            virtual machines
  network       guest networks
  storage       Ceph storage
  provisioner   VM provisioning
  cluster       initialise the cluster, its status, maintenance mode
  connection    the API connections this client knows
  config        the node configuration (pvc config sample)

Options:
  -c NAME, --connection NAME  API connection to use (or $PVC_CONNECTION; default: local)
  --config FILE               node configuration (or $PVC_CONFIG; default: /etc/pvc/pvc.conf)
  --insecure                  do not verify the API's TLS certificate
  -h, --help                  show this help
  --version                   show the version

Run 'pvc <group> --help' for a group's commands. Exit codes: 0 ok, 1 the operation failed,
2 the command was used wrongly.
"""

import importlib
import os
import sys
from dataclasses import dataclass

# Each group's module is imported only when that group runs, so `pvc --help` stays fast and
# never imports kazoo, bottle or libvirt.
GROUPS = {
    "node": "pvc.cli.node",
    "api": "pvc.cli.api",
    "vm": "pvc.cli.vm",
    "network": "pvc.cli.network",
    "storage": "pvc.cli.storage",
    "provisioner": "pvc.cli.provisioner",
    "cluster": "pvc.cli.cluster",
    "connection": "pvc.cli.connection",
    "config": "pvc.cli.config",
}

# Global options are accepted anywhere on the line: `pvc cluster status -c prod` works too.
GLOBAL_WITH_VALUE = {"-c": "connection", "--connection": "connection", "--config": "config"}
GLOBAL_FLAGS = {"--insecure": "insecure"}


@dataclass
class Globals:
    """Options that apply to every group."""

    connection: str | None = None
    config: str | None = None
    insecure: bool = False


def split_globals(argv: list[str]) -> tuple[Globals, list[str]]:
    """Takes the global options out of argv, wherever they stand; returns them and the rest."""
    found = Globals()
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        name, _, inline = word.partition("=")
        if word == "--":
            rest.append(word)
            rest.extend(words)
            break
        if name in GLOBAL_WITH_VALUE:
            value = inline if inline else next(words, None)
            if not value:
                raise SystemExit(usage_error(f"option {name} needs a value"))
            setattr(found, GLOBAL_WITH_VALUE[name], value)
        elif word in GLOBAL_FLAGS:
            setattr(found, GLOBAL_FLAGS[word], True)
        else:
            rest.append(word)
    return found, rest


def usage_error(message: str) -> int:
    print(f"pvc: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from pvc.errors import PvcError
    from pvc.limits import one_line

    argv = list(sys.argv[1:] if argv is None else argv)
    options, rest = split_globals(argv)
    if not rest or rest[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0 if rest else 2
    if rest[0] == "--version":
        import pvc

        print(f"pvc {pvc.__version__}")
        return 0
    group, args = rest[0], rest[1:]
    if group not in GROUPS:
        return usage_error(f"unknown group '{group}'; see 'pvc --help'")
    if GROUPS[group] is None:
        print(f"pvc {group}: not available in this version yet", file=sys.stderr)
        return 1
    module = importlib.import_module(GROUPS[group])
    try:
        return module.main(args, options) or 0
    except PvcError as exc:
        print(f"pvc: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into e.g. head, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if os.environ.get("PVC_DEBUG"):
            raise
        print(
            f"pvc: unexpected error: {type(exc).__name__}: {one_line(str(exc))}"
            " (PVC_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

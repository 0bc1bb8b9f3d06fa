"""``fedcurate keys``: provision and inspect keys (CKKS, TLS, SuperNode auth).

Private files are written with mode 0600; nothing secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from fedcurate.crypto import keys_info, keys_init

USAGE = """\
usage: fedcurate keys {init,info,tls,node} ...

  init  --out DIR     CKKS key pair: secret context for the curator (0600), public for everyone else
  info  FILE          what a CKKS key file holds (kind, preset, size, fingerprint), no secrets
  tls   --out DIR ... a CA and a SuperLink server certificate
  node  --out DIR ... SuperNode authentication keys (ECDSA P-384, OpenSSH format)

example: fedcurate keys init --out keys/ --scoring && fedcurate keys info keys/ckks-public.ctx
"""


def init_command(argv: list[str]) -> int:
    """``fedcurate keys init --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="fedcurate keys init",
        description="Provision a CKKS key pair: ckks-secret.ctx (curator only, mode 0600) "
        "and ckks-public.ctx (owners and server).",
        epilog="example: fedcurate keys init --out keys/ --scoring",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the two files")
    parser.add_argument("--preset", default="auto", help="CKKS preset (default: auto)")
    parser.add_argument(
        "--scoring",
        action="store_true",
        help="the curator will score owners on ciphertexts (curator=first_order)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing key files")
    args = parser.parse_args(argv)
    described = keys_init(
        args.out, preset=args.preset, encrypted_scoring=args.scoring, overwrite=args.overwrite
    )
    print(json.dumps(described, indent=2))
    return 0


def info_command(argv: list[str]) -> int:
    """``fedcurate keys info FILE``."""
    parser = argparse.ArgumentParser(
        prog="fedcurate keys info",
        description="Describe a CKKS key file without revealing any key material.",
        epilog="example: fedcurate keys info keys/ckks-secret.ctx",
    )
    parser.add_argument("file", type=Path, help="a ckks-public.ctx or ckks-secret.ctx file")
    args = parser.parse_args(argv)
    print(json.dumps(keys_info(args.file), indent=2))
    return 0


def _provisioning(name: str) -> Callable[[list[str]], int]:
    def command(argv: list[str]) -> int:
        from fedcurate.provisioning import commands

        run: Callable[[list[str]], int] = getattr(commands, f"keys_{name}_command")
        return run(argv)

    return command


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "init": init_command,
    "info": info_command,
    "tls": _provisioning("tls"),
    "node": _provisioning("node"),
}


def main(argv: list[str]) -> int:
    """Dispatch ``fedcurate keys SUBCOMMAND``."""
    if not argv or argv[0] not in SUBCOMMANDS:
        print(USAGE)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return SUBCOMMANDS[argv[0]](argv[1:])

"""``fedcurate keys tls`` and ``fedcurate keys node``: provisioning from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedcurate.provisioning.nodes import provision_node_keys
from fedcurate.provisioning.tls import CA_VALID_DAYS, SERVER_VALID_DAYS, provision_tls

#: Always in the certificate: a SuperLink listening on 0.0.0.0 starts its
#: ServerApps against 127.0.0.1, and they verify the certificate too.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]

TLS_EPILOG = """\
example (at the coordinator, for a SuperLink reached as fl.example.org or 10.0.0.5):
  fedcurate keys tls --out keys/tls --host fl.example.org --host 10.0.0.5
then start flower-superlink with --ssl-ca-certfile keys/tls/ca.crt
--ssl-certfile keys/tls/server.pem --ssl-keyfile keys/tls/server.key and give
every site (and every flwr CLI user) keys/tls/ca.crt; ca.key stays with you.
Running it again in the same directory reuses the CA and renews server.pem.
"""

NODE_EPILOG = """\
example (at the site 'hospital-a'):
  fedcurate keys node --out keys --name hospital-a
start flower-supernode with --auth-supernode-private-key keys/hospital-a.key and
send keys/hospital-a.pub to the coordinator, who registers it:
  flwr supernode register hospital-a.pub CONNECTION
"""


def keys_tls_command(argv: list[str]) -> int:
    """``fedcurate keys tls``: a CA and a SuperLink certificate."""
    parser = argparse.ArgumentParser(
        prog="fedcurate keys tls",
        description="Create a private CA (or reuse the one in --out) and issue the "
        "SuperLink's TLS certificate for the given host names and IP addresses.",
        epilog=TLS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="HOST",
        default=[],
        help="a name or IP address the SuperLink is reached at (repeatable); "
        f"{' and '.join(LOOPBACK_HOSTS)} are always added",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=SERVER_VALID_DAYS,
        help=f"validity of the server certificate (default {SERVER_VALID_DAYS})",
    )
    parser.add_argument(
        "--ca-days",
        type=int,
        default=CA_VALID_DAYS,
        help=f"validity of a new CA (default {CA_VALID_DAYS})",
    )
    args = parser.parse_args(argv)
    hosts = [*args.hosts, *(h for h in LOOPBACK_HOSTS if h not in args.hosts)]
    try:
        paths = provision_tls(
            args.out, hosts, server_valid_days=args.days, ca_valid_days=args.ca_days
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"CA certificate (give to every site): {paths.ca_cert}\n"
        f"CA private key (keep, mode 0600):    {paths.ca_key}\n"
        f"SuperLink certificate for {', '.join(hosts)}: {paths.server_cert}\n"
        f"SuperLink private key (mode 0600):   {paths.server_key}"
    )
    return 0


def keys_node_command(argv: list[str]) -> int:
    """``fedcurate keys node``: a SuperNode authentication key pair."""
    parser = argparse.ArgumentParser(
        prog="fedcurate keys node",
        description="Create a site's SuperNode authentication key pair "
        "(ECDSA P-384, OpenSSH format): NAME.key (mode 0600) and NAME.pub.",
        epilog=NODE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--name", required=True, help="the site's name, e.g. hospital-a")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing key pair (the new public key must be registered again)",
    )
    args = parser.parse_args(argv)
    try:
        paths = provision_node_keys(args.out, args.name, overwrite=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"private key (stays at the site, mode 0600): {paths.private_key}\n"
        f"public key (register at the SuperLink):     {paths.public_key}"
    )
    return 0

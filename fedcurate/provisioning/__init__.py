"""Deployment provisioning: TLS for the SuperLink and SuperNode authentication keys.

The CKKS keys live in :mod:`fedcurate.crypto.keyfiles`; this package covers the
transport: a private CA and the SuperLink's server certificate
(:func:`provision_tls`) and each site's ECDSA P-384 key pair
(:func:`provision_node_keys`). Private files are written atomically, mode 0600.
"""

from fedcurate.provisioning.commands import keys_node_command, keys_tls_command
from fedcurate.provisioning.nodes import NodeKeyPaths, provision_node_keys
from fedcurate.provisioning.tls import TlsPaths, provision_tls

__all__ = [
    "NodeKeyPaths",
    "TlsPaths",
    "keys_node_command",
    "keys_tls_command",
    "provision_node_keys",
    "provision_tls",
]

"""Throw-away TLS material for tests: a self-signed CA and a broker certificate it signed, made with
the ``openssl`` command line (on every Debian/Ubuntu machine; no Python crypto package needed)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certificates", "make_ca"]


@dataclass(frozen=True)
class Certificates:
    """A CA (``ca_cert``, ``ca_key``) and, signed by it, a certificate for 127.0.0.1/localhost
    (``cert``, with its unencrypted PKCS#8 ``key``)."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    res = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def make_ca(folder: Path, name: str = "streamdq-test") -> Certificates:
    """Create ``<name>-ca.pem``/``.key`` and ``<name>-broker.pem``/``.key`` in ``folder`` (valid two days)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = folder / f"{name}-ca.pem", folder / f"{name}-ca.key"
    cert, key, csr = folder / f"{name}-broker.pem", folder / f"{name}-broker.key", folder / f"{name}-broker.csr"
    ext = folder / f"{name}-broker.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert, "-days", "2",
             "-subj", f"/CN={name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost", cwd=folder)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext, cwd=folder)
    return Certificates(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key)

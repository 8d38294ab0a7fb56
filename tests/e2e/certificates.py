"""Certificates for the TLS tests, made with the openssl command: a test CA
and certificates it signs (or that sign themselves), as PEM files in a
directory (keys mode 600, as fastcore requires)."""
import os
import subprocess


def openssl(*args, cwd):
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, common_name, name="ca"):
    """name.pem and name.key: a self-signed CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/O=fastcore tests/CN={common_name}", cwd=directory)


def make_certificate(directory, name, common_name, sans, ca=True, extensions=(), issuer="ca"):
    """name.pem and name.key (mode 600), signed by the CA `issuer` (ca=True)
    or by itself; extensions: more lines of the x509 extension file (e.g.
    "authorityInfoAccess=OCSP;URI:http://...")."""
    ext = directory / f"{name}.ext"
    lines = ["subjectAltName=" + ",".join(sans)] if sans else ["basicConstraints=CA:FALSE"]
    ext.write_text("\n".join([*lines, *extensions]) + "\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/O=fastcore tests/CN={common_name}", cwd=directory)
    if ca:
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name, cwd=directory)
    else:
        openssl("x509", "-req", "-in", f"{name}.csr", "-signkey", f"{name}.key", "-days", "2",
                "-out", f"{name}.pem", "-extfile", ext.name, cwd=directory)
    os.chmod(directory / f"{name}.key", 0o600)

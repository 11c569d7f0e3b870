"""
sasl_util.py: client-side SASL for the tests (standard library only, plus
the openssl command line for keys and signatures).

Base64
    b64e(data) -> str           standard base64 of bytes (str: UTF-8)
    b64d(text) -> bytes         strict decode (raises on bad input)
    b64url(data) -> str         base64url without padding (JWT)

SCRAM (RFC 5802, RFC 7677)
    scram_keys(password, salt, iterations, hash_name="sha256")
                                -> ScramKeys(salted, client_key, stored_key,
                                   server_key)
    scram_extra(password, hash_name="sha256", iterations=4096, salt=None)
                                the passwd-file extra field value
                                "scram-sha-256=ITER,SALT,STORED,SERVER"
                                (key included: "scram-sha-256=...")
    ScramClient(user, password, hash_name="sha256", authzid=None,
                cb_flag="n", cb_name=None, cb_data=b"", nonce=None)
        .first() -> bytes       client-first-message
        .final(server_first) -> bytes   client-final-message; checks the
                                server nonce extends ours; .salt,
                                .iterations, .server_nonce are set
        .verify(server_final) -> None   asserts v= is the ServerSignature
        .gs2_header, .server_signature
    cb_flag: "n" (no channel binding), "y" (client could, server did not
    offer), "p" (cb_name required: tls-unique or tls-exporter); c= is
    base64(gs2-header + cb_data) for "p", else base64(gs2-header).

CRAM-MD5 (RFC 2195)
    cram_md5_response(user, secret, challenge) -> bytes

OAuth (RFC 7628 and Google's XOAUTH2)
    oauthbearer_message(token, user=None, extra=()) -> bytes
    xoauth2_message(user, token) -> bytes
    JwtKeys(directory)          openssl-made keys in directory: rsa (RSA
                                2048), ec (P-256), rsa_other and ec_other
                                (signed by nobody configured); .pub(name)
                                -> path of the public key PEM; .sign(name,
                                data) -> signature (RS256 PKCS#1 v1.5 or
                                ES256 raw r||s)
    jwt_keys() -> JwtKeys       one set per test process (made on first use)
    make_jwt(keys, key_name, claims, alg=None, header=None) -> str
                                alg defaults from the key (RS256 / ES256);
                                alg="none" makes an unsigned token
    claims(iss, aud, sub, lifetime=3600, now=None, **extra) -> dict

Servers
    wait_sasl_offered(srv, timeout=5.0, streak=4, tls=False)
                                after Server.start(): waits until `streak`
                                connections in a row list SASL in CAPA (each
                                pop3 worker learns what the auth workers can
                                verify after it starts accepting; see
                                test_sasl.py test_sasl_offered_from_the_start)

User database
    sha512_crypt(password) -> "{SHA512-CRYPT}$6$..."  (openssl passwd -6)
    passwd_line(name, password=None, plain=None, scram=(), secret=None,
                iterations=4096, **extra) -> str
        password: hashed with SHA512-CRYPT; plain: stored as {PLAIN}
        (which also gives a secret); scram: hash names ("sha1",
        "sha256") whose keys are added for password (or plain); secret:
        plaintext-equivalent secret (base64 written); extra: more
        key=value fields (login_delay=2, disabled="yes", ...).

TLS channel bindings
    tls_unique(conn) -> bytes   RFC 5929, via ssl.get_channel_binding
    tls_exporter(conn) -> bytes RFC 9266: SSL_export_keying_material(
                                "EXPORTER-Channel-Binding", no context,
                                32 octets) on the connection's own SSL
                                object, through ctypes and the libssl this
                                Python's ssl module uses (Python 3.11's ssl
                                cannot export keying material); the SSL
                                pointer is checked against what the ssl
                                module reports before it is trusted
    SClientPop3(host, port, starttls=False, ...)
                                POP3 through an `openssl s_client`
                                subprocess (-keymatexport): an independent
                                source of tls-exporter for a real
                                connection; .exporter, .status(),
                                .sendline(), .command(), .close()
"""

import atexit
import base64
import collections
import ctypes
import hashlib
import hmac
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time

OPENSSL_TIMEOUT = 60


# ------------------------------------------------------------------ base64

def _bytes(data):
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def b64e(data):
    return base64.b64encode(_bytes(data)).decode("ascii")


def b64d(text):
    if isinstance(text, str):
        text = text.encode("ascii")
    return base64.b64decode(text, validate=True)


def b64url(data):
    return base64.urlsafe_b64encode(_bytes(data)).rstrip(b"=").decode("ascii")


# ------------------------------------------------------------------- SCRAM

ScramKeys = collections.namedtuple(
    "ScramKeys", "salted client_key stored_key server_key")


def _hmac(hash_name, key, msg):
    return hmac.new(key, _bytes(msg), hash_name).digest()


def scram_keys(password, salt, iterations, hash_name="sha256"):
    salted = hashlib.pbkdf2_hmac(hash_name, _bytes(password), salt,
                                 iterations)
    client_key = _hmac(hash_name, salted, b"Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = _hmac(hash_name, salted, b"Server Key")
    return ScramKeys(salted, client_key, stored_key, server_key)


def scram_extra(password, hash_name="sha256", iterations=4096, salt=None):
    """"scram-sha-256=ITER,SALT,STOREDKEY,SERVERKEY" for the extra field."""
    salt = os.urandom(16) if salt is None else salt
    k = scram_keys(password, salt, iterations, hash_name)
    key = {"sha1": "scram-sha-1", "sha256": "scram-sha-256"}[hash_name]
    return "%s=%d,%s,%s,%s" % (key, iterations, b64e(salt),
                               b64e(k.stored_key), b64e(k.server_key))


def saslname(name):
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    def __init__(self, user, password, hash_name="sha256", authzid=None,
                 cb_flag="n", cb_name=None, cb_data=b"", nonce=None):
        assert cb_flag in ("n", "y", "p")
        assert (cb_flag == "p") == (cb_name is not None)
        self.user = user
        self.password = password
        self.hash_name = hash_name
        self.cb_flag = cb_flag
        self.cb_data = cb_data
        flag = "p=" + cb_name if cb_flag == "p" else cb_flag
        self.gs2_header = "%s,%s," % (
            flag, "a=" + saslname(authzid) if authzid else "")
        self.nonce = nonce or b64e(os.urandom(18))
        self.first_bare = "n=%s,r=%s" % (saslname(user), self.nonce)
        self.server_signature = None
        self.salt = self.iterations = self.server_nonce = None

    def first(self):
        return (self.gs2_header + self.first_bare).encode("utf-8")

    def final(self, server_first, cb_data=None, nonce=None, proof=None):
        """The client-final-message.  cb_data/nonce/proof override what
        goes into c=, r= and p= (to test that the server checks them)."""
        server_first = server_first.decode("utf-8") \
            if isinstance(server_first, bytes) else server_first
        m = re.match(r"r=([^,]+),s=([^,]+),i=(\d+)(,.*)?\Z", server_first)
        assert m, "bad SCRAM server-first-message %r" % server_first
        self.server_nonce = m.group(1)
        assert self.server_nonce.startswith(self.nonce) and \
            len(self.server_nonce) > len(self.nonce), \
            "server nonce %r does not extend ours %r" % (self.server_nonce,
                                                          self.nonce)
        self.salt = b64d(m.group(2))
        self.iterations = int(m.group(3))
        keys = scram_keys(self.password, self.salt, self.iterations,
                          self.hash_name)
        cbind = self.gs2_header.encode("utf-8")
        if self.cb_flag == "p":
            cbind += self.cb_data if cb_data is None else cb_data
        without_proof = "c=%s,r=%s" % (
            b64e(cbind), self.server_nonce if nonce is None else nonce)
        auth_message = ",".join((self.first_bare, server_first,
                                 without_proof))
        client_sig = _hmac(self.hash_name, keys.stored_key, auth_message)
        client_proof = bytes(a ^ b for a, b in zip(keys.client_key,
                                                   client_sig))
        self.server_signature = _hmac(self.hash_name, keys.server_key,
                                      auth_message)
        if proof is not None:
            client_proof = proof
        return ("%s,p=%s" % (without_proof, b64e(client_proof))).encode()

    def verify(self, server_final):
        server_final = server_final.decode("utf-8") \
            if isinstance(server_final, bytes) else server_final
        assert server_final.startswith("v="), \
            "SCRAM server-final-message %r" % server_final
        got = b64d(server_final[2:])
        assert hmac.compare_digest(got, self.server_signature), \
            "SCRAM ServerSignature does not match: %r" % server_final


# ---------------------------------------------------------------- CRAM-MD5

def cram_md5_response(user, secret, challenge):
    digest = hmac.new(_bytes(secret), _bytes(challenge), "md5").hexdigest()
    return ("%s %s" % (user, digest)).encode("utf-8")


# ------------------------------------------------------------------- OAuth

def oauthbearer_message(token, user=None, extra=()):
    """RFC 7628 section 3.1: gs2 header, then kvpairs separated by ^A."""
    out = "n,%s," % ("a=" + saslname(user) if user is not None else "")
    out += "\x01"
    for k, v in extra:
        out += "%s=%s\x01" % (k, v)
    out += "auth=Bearer %s\x01\x01" % token
    return out.encode("utf-8")


def xoauth2_message(user, token):
    return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()


def _openssl(*args, cwd=None, input=None):
    argv = ["openssl"] + [str(a) for a in args]
    try:
        r = subprocess.run(argv, cwd=cwd, input=input,
                           stdin=None if input is not None else
                           subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=OPENSSL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s timed out" % " ".join(argv)) from None
    assert r.returncode == 0, "%s: exit %d:\n%s" % (
        " ".join(argv), r.returncode, r.stderr.decode("utf-8", "replace"))
    return r.stdout


def _der_ecdsa_to_raw(der, size=32):
    """DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> r || s."""
    def read_len(buf, i):
        n = buf[i]
        i += 1
        if n & 0x80:
            k = n & 0x7f
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        return n, i

    assert der[0] == 0x30, "not a DER SEQUENCE: %r" % der[:8]
    _, i = read_len(der, 1)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, "not a DER INTEGER at %d" % i
        n, i = read_len(der, i + 1)
        v = der[i:i + n].lstrip(b"\0")
        i += n
        assert len(v) <= size
        out += v.rjust(size, b"\0")
    return out


class JwtKeys:
    KEYS = {"rsa": "RS256", "rsa_other": "RS256",
            "ec": "ES256", "ec_other": "ES256"}

    def __init__(self, directory):
        self.dir = directory
        for name, alg in self.KEYS.items():
            key = self.key(name)
            if alg == "RS256":
                _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                         "rsa_keygen_bits:2048", "-out", key)
            else:
                _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-out", key)
            _openssl("pkey", "-in", key, "-pubout", "-out", self.pub(name))
            os.chmod(self.pub(name), 0o644)

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def pub(self, name):
        return os.path.join(self.dir, name + ".pub.pem")

    def alg(self, name):
        return self.KEYS[name]

    def sign(self, name, data):
        sig = _openssl("dgst", "-sha256", "-sign", self.key(name),
                       input=_bytes(data))
        if self.alg(name) == "ES256":
            sig = _der_ecdsa_to_raw(sig)
        return sig


_jwt_keys = []
_jwt_lock = threading.Lock()


def jwt_keys():
    with _jwt_lock:
        if not _jwt_keys:
            d = tempfile.mkdtemp(prefix="postern-jwt-")
            os.chmod(d, 0o755)
            try:
                _jwt_keys.append(JwtKeys(d))
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                raise
            if not os.environ.get("POSTERN_KEEP_TMP"):
                atexit.register(shutil.rmtree, d, True)
        return _jwt_keys[0]


def claims(iss, aud, sub, lifetime=3600, now=None, **extra):
    now = int(time.time()) if now is None else int(now)
    c = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "nbf": now,
         "exp": now + lifetime}
    c.update(extra)
    return c


def make_jwt(keys, key_name, claim_set, alg=None, header=None):
    alg = alg or keys.alg(key_name)
    hdr = {"alg": alg, "typ": "JWT"}
    hdr.update(header or {})
    signing_input = "%s.%s" % (
        b64url(json.dumps(hdr, separators=(",", ":"))),
        b64url(json.dumps(claim_set, separators=(",", ":"))))
    if alg == "none":
        return signing_input + "."
    return signing_input + "." + b64url(keys.sign(key_name, signing_input))


# ------------------------------------------------------------------ server

def wait_sasl_offered(srv, timeout=5.0, streak=4, tls=False):
    end = time.monotonic() + timeout
    good = 0
    last = None
    while good < streak:
        assert time.monotonic() < end, \
            "CAPA lists no SASL mechanism %.0fs after the start: %r" % (
                timeout, last)
        c = srv.connect_tls() if tls else srv.connect()
        try:
            c.sendline("CAPA")
            st = c.status()
            assert st.startswith("+OK"), "CAPA: %r" % st
            last = c.read_multiline().decode("latin-1")
            c.sendline("QUIT")
            c.status()
        finally:
            c.close()
        if re.search(r"^SASL ", last, re.M):
            good += 1
        else:
            good = 0
            time.sleep(0.02)


# ----------------------------------------------------------- user database

def sha512_crypt(password):
    out = _openssl("passwd", "-6", "-stdin",
                   input=_bytes(password) + b"\n")
    h = out.decode("ascii").strip()
    assert h.startswith("$6$"), h
    return "{SHA512-CRYPT}" + h


def passwd_line(name, password=None, plain=None, scram=(), secret=None,
                iterations=4096, **extra):
    if plain is not None:
        pw_field = "{PLAIN}" + plain
    elif password is not None:
        pw_field = sha512_crypt(password)
    else:
        pw_field = ""
    fields = []
    for h in scram:
        fields.append(scram_extra(plain if plain is not None else password,
                                  h, iterations))
    if secret is not None:
        fields.append("secret=" + b64e(secret))
    for k, v in extra.items():
        fields.append("%s=%s" % (k, v))
    return "%s:%s::::::%s" % (name, pw_field, " ".join(fields))


# -------------------------------------------------------- channel bindings

def tls_unique(conn):
    """RFC 5929 tls-unique of a Pop3Conn over TLS (TLS 1.2)."""
    cb = conn.tls.get_channel_binding("tls-unique")
    assert cb, "no tls-unique for this connection"
    return cb


_libssl = []


def _libssl_handle():
    """The libssl the ssl module is linked with (from /proc/self/maps)."""
    if _libssl:
        return _libssl[0]
    path = None
    with open("/proc/self/maps") as f:
        for line in f:
            m = re.search(r"(/\S*/libssl\.so[.\d]*)$", line.strip())
            if m:
                path = m.group(1)
                break
    assert path, "libssl is not loaded in this process"
    lib = ctypes.CDLL(path)
    lib.SSL_get_version.restype = ctypes.c_char_p
    lib.SSL_get_version.argtypes = [ctypes.c_void_p]
    lib.SSL_is_server.restype = ctypes.c_int
    lib.SSL_is_server.argtypes = [ctypes.c_void_p]
    lib.SSL_get_finished.restype = ctypes.c_size_t
    lib.SSL_get_finished.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_size_t]
    lib.SSL_export_keying_material.restype = ctypes.c_int
    lib.SSL_export_keying_material.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
        ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _libssl.append(lib)
    return lib


def _ssl_pointer(sslsock):
    """The SSL * inside an ssl.SSLSocket (CPython's PySSLSocket: the
    object header, a PyObject *Socket, then SSL *ssl), checked."""
    lib = _libssl_handle()
    obj = sslsock._sslobj
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    ptr = ctypes.c_void_p.from_address(
        id(obj) + head + ctypes.sizeof(ctypes.c_void_p)).value
    assert ptr, "no SSL pointer"
    version = lib.SSL_get_version(ptr)
    assert version is not None and \
        version.decode("ascii") == sslsock.version(), \
        "SSL pointer check failed (%r vs %r)" % (version, sslsock.version())
    assert lib.SSL_is_server(ptr) == 0
    if sslsock.version() == "TLSv1.2":
        buf = ctypes.create_string_buffer(64)
        n = lib.SSL_get_finished(ptr, buf, 64)
        fin = buf.raw[:n]
        # A full handshake: our Finished is the first one (tls-unique).
        if not sslsock.session_reused:
            assert fin == sslsock.get_channel_binding("tls-unique"), \
                "SSL pointer check failed (Finished differs)"
    return ptr


def tls_exporter(conn, label=b"EXPORTER-Channel-Binding", length=32):
    """RFC 9266 tls-exporter of a Pop3Conn (or ssl.SSLSocket)."""
    sslsock = conn.tls if hasattr(conn, "tls") else conn
    assert sslsock is not None, "not a TLS connection"
    lib = _libssl_handle()
    ptr = _ssl_pointer(sslsock)
    out = ctypes.create_string_buffer(length)
    rc = lib.SSL_export_keying_material(ptr, out, length, label, len(label),
                                        None, 0, 0)
    assert rc == 1, "SSL_export_keying_material failed"
    return out.raw


class SClientPop3:
    """POP3 through `openssl s_client`, which prints the keying material
    (-keymatexport) after the handshake.  Only lines ending in CRLF come
    from the server: s_client's own output ends its lines with LF."""

    def __init__(self, host, port, ca_file, starttls=False,
                 tls_version=None, cert=None, key=None, timeout=10):
        argv = ["openssl", "s_client", "-connect", "%s:%d" % (host, port),
                "-servername", "localhost", "-verify_return_error",
                "-CAfile", ca_file, "-nocommands",
                "-keymatexport", "EXPORTER-Channel-Binding",
                "-keymatexportlen", "32"]
        if starttls:
            argv += ["-starttls", "pop3"]
        if tls_version:
            argv.append({"TLSv1.2": "-tls1_2",
                         "TLSv1.3": "-tls1_3"}[tls_version])
        if cert:
            argv += ["-cert", cert, "-key", key]
        self.timeout = timeout
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""
        self.exporter = None
        self.protocol = None
        self.greeting = None
        deadline = time.monotonic() + timeout
        while self.exporter is None:
            line = self._line(deadline)
            m = re.match(rb"\s*Keying material: ([0-9A-Fa-f]+)\s*$", line)
            if m:
                self.exporter = bytes.fromhex(m.group(1).decode())
            m = re.match(rb"(?:New|Reused), (TLSv[\d.]+), ", line)
            if m:
                self.protocol = m.group(1).decode()
        assert len(self.exporter) == 32, self.exporter
        if not starttls:
            self.greeting = self.status()

    def _line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("s_client: no line within %ss; have %r"
                                     % (self.timeout, self.buf[-300:]))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                err = self.proc.stderr.read().decode("utf-8", "replace")
                raise AssertionError("s_client ended; pending %r\n%s"
                                     % (self.buf[-300:], err[-2000:]))
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def status(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self._line(deadline)
            if line.endswith(b"\r\n"):
                return line[:-2].decode("latin-1")

    def sendline(self, line):
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.proc.stdin.write(line + b"\r\n")
        self.proc.stdin.flush()

    def command(self, line, timeout=None):
        self.sendline(line)
        return self.status(timeout)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

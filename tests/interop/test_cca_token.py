#!/usr/bin/env python3
"""test_cca_token.py - tokens made by lib/ccatoken.c, checked by
verify_token.py (python3-cbor2 + python3-cryptography, no virtmgr code):
both realm curves verify with the right challenge, RIM and REM; a flipped
byte, the wrong challenge, the wrong RIM and the wrong platform key each
fail with a reason. And the other way round: a token written in Python
verifies with vmctl attest verify, and fails it when its binding is broken.
"""
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
try:
    import cbor2  # noqa: F401
    import cryptography  # noqa: F401
except ImportError:
    if sys.executable != '/usr/bin/python3' and os.path.exists('/usr/bin/python3'):
        os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
    print('FAIL: python3-cbor2 and python3-cryptography are needed', file=sys.stderr)
    sys.exit(99)

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get('top_builddir', os.path.join(HERE, '..', '..'))
MKTOKEN = os.path.join(BUILD, 'tests', 'interop', 'cca_mktoken')
VERIFY = os.path.join(HERE, 'verify_token.py')
passed = failed = 0


def run(*args):
    return subprocess.run([sys.executable, VERIFY] + list(args), capture_output=True, text=True)


def check(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'ok - {name}')
    else:
        failed += 1
        print(f'not ok - {name}: {detail}')


for bits in (256, 384):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([MKTOKEN, d, str(bits)], check=True)
        chal, rim, rem2 = open(os.path.join(d, 'claims')).read().split()
        tok = os.path.join(d, 'token.cbor')
        key = os.path.join(d, 'platform.pem')
        r = run(tok, '--challenge', chal, '--key', key, '--expect-rim', rim, '--expect-rem', f'2:{rem2}',
                '--print')
        check(f'P-{bits}: verifies', r.returncode == 0, r.stderr)
        check(f'P-{bits}: claims printed', f'"rim": "{rim}"' in r.stdout, r.stdout)
        r = run(tok, '--challenge', chal)
        check(f'P-{bits}: verifies without the platform key', r.returncode == 0, r.stderr)
        bad = ('00' if chal[:2] != '00' else '01') + chal[2:]
        r = run(tok, '--challenge', bad, '--key', key)
        check(f'P-{bits}: wrong challenge fails', r.returncode == 1 and 'challenge' in r.stderr, r.stderr)
        r = run(tok, '--challenge', chal, '--key', key, '--expect-rim', '00' * (len(rim) // 2))
        check(f'P-{bits}: wrong RIM fails', r.returncode == 1 and 'RIM' in r.stderr, r.stderr)
        r = run(tok, '--challenge', chal, '--key', os.path.join(d, 'other.pem'))
        check(f'P-{bits}: wrong platform key fails', r.returncode == 1 and 'platform token' in r.stderr, r.stderr)
        data = bytearray(open(tok, 'rb').read())
        data[len(data) - 10] ^= 0x01  # inside the realm token's signature
        open(tok, 'wb').write(data)
        r = run(tok, '--challenge', chal, '--key', key)
        check(f'P-{bits}: flipped byte fails', r.returncode == 1 and 'realm token' in r.stderr, r.stderr)

# The other direction: a token written here, by Python, read by the C code
# (vmctl attest verify), with a P-384 platform key and a P-256 realm key.
import hashlib
import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def sign1(key, alg, h, n, payload):
    prot = cbor2.dumps({1: alg})
    der = key.sign(cbor2.dumps(["Signature1", prot, b"", payload]), ec.ECDSA(h))
    r, s = decode_dss_signature(der)
    return cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, r.to_bytes(n, "big") + s.to_bytes(n, "big")]))


VMCTL = os.path.join(BUILD, 'client', 'vmctl')
realm_key = ec.generate_private_key(ec.SECP256R1())
plat_key = ec.generate_private_key(ec.SECP384R1())
nums = realm_key.public_key().public_numbers()
cose_key = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")})
chal = os.urandom(64)
rim = hashlib.sha256(b"python rim").digest()
realm = {265: "tag:arm.com,2023:realm#1.0.0", 10: chal, 44235: bytes(64), 44236: "sha-256", 44237: cose_key,
         44238: rim, 44239: [bytes(32)] * 4, 44240: "sha-256"}
plat = {265: "tag:arm.com,2023:cca_platform#1.0.0", 10: hashlib.sha256(cose_key).digest(), 256: b"\x01" + bytes(32),
        2396: bytes(32), 2395: 0x4000, 2401: b"", 2402: "sha-384",
        2399: [{1: "virtmgrd", 2: bytes(32), 5: b""}]}
tok = cbor2.dumps(cbor2.CBORTag(399, {
    44234: sign1(plat_key, -35, hashes.SHA384(), 48, cbor2.dumps(plat)),
    44241: sign1(realm_key, -7, hashes.SHA256(), 32, cbor2.dumps(realm))}))
with tempfile.TemporaryDirectory() as d:
    tp, kp = os.path.join(d, 'py.cbor'), os.path.join(d, 'plat.pem')
    open(tp, 'wb').write(tok)
    open(kp, 'wb').write(plat_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    r = subprocess.run([VMCTL, 'attest', 'verify', tp, '--challenge', chal.hex(), '--key', kp,
                        '--expect-rim', rim.hex()], capture_output=True, text=True)
    check('a Python-made token verifies in vmctl', r.returncode == 0 and f'realm.rim: {rim.hex()}' in r.stdout,
          r.stderr + r.stdout)
    bad = dict(plat)
    bad[10] = hashlib.sha256(b"another key").digest()
    tok2 = cbor2.dumps(cbor2.CBORTag(399, {
        44234: sign1(plat_key, -35, hashes.SHA384(), 48, cbor2.dumps(bad)),
        44241: sign1(realm_key, -7, hashes.SHA256(), 32, cbor2.dumps(realm))}))
    open(tp, 'wb').write(tok2)
    r = subprocess.run([VMCTL, 'attest', 'verify', tp, '--challenge', chal.hex(), '--key', kp],
                       capture_output=True, text=True)
    check('vmctl: a Python-made token with a broken binding fails', r.returncode == 1 and 'binding' in r.stderr,
          r.stderr)

print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)

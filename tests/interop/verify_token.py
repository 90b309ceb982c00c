#!/usr/bin/python3
"""verify_token.py - check a CCA attestation token without virtmgr's code.

An independent reading of the format in docs/attestation.md ("Token
format"), with python3-cbor2 and python3-cryptography: tag 399 over
{44234: platform COSE_Sign1, 44241: realm COSE_Sign1}; the realm token is
signed by the key in its claim 44237; the platform challenge is the hash
(claim 44240) of that claim's bytes; the platform token is signed by the
key given with --key (PEM SubjectPublicKeyInfo).

Usage: verify_token.py TOKEN --challenge HEX [--key PEM] [--expect-rim HEX]
           [--expect-rem INDEX:HEX] [--print]
Exit 0 when everything holds, 1 with the reason on stderr otherwise.
"""
import argparse
import hashlib
import json
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ALGS = {-7: (ec.SECP256R1, hashes.SHA256(), 32), -35: (ec.SECP384R1, hashes.SHA384(), 48)}
HASHES = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}
REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"
PLATFORM_PROFILE = "tag:arm.com,2023:cca_platform#1.0.0"


class Bad(Exception):
    pass


def sign1(raw, what):
    msg = cbor2.loads(raw)
    if isinstance(msg, cbor2.CBORTag):
        if msg.tag != 18:
            raise Bad(f"{what}: COSE tag {msg.tag}, not 18")
        msg = msg.value
    if not (isinstance(msg, list) and len(msg) == 4):
        raise Bad(f"{what}: not a COSE_Sign1 array of 4")
    prot, unprot, payload, sig = msg
    if not all(isinstance(x, bytes) for x in (prot, payload, sig)) or not isinstance(unprot, dict):
        raise Bad(f"{what}: COSE_Sign1 items of the wrong types")
    alg = cbor2.loads(prot).get(1)
    if alg not in ALGS:
        raise Bad(f"{what}: unsupported COSE alg {alg}")
    return prot, payload, sig, alg


def check_sig(pub, prot, payload, sig, alg, what):
    curve, h, n = ALGS[alg]
    if not isinstance(pub.curve, curve):
        raise Bad(f"{what}: alg {alg} does not match the key's curve {pub.curve.name}")
    if len(sig) != 2 * n:
        raise Bad(f"{what}: signature of {len(sig)} bytes, expected {2 * n}")
    der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
    tbs = cbor2.dumps(["Signature1", prot, b"", payload])
    try:
        pub.verify(der, tbs, ec.ECDSA(h))
    except InvalidSignature:
        raise Bad(f"{what}: signature does not verify")


def cose_key(raw):
    k = cbor2.loads(raw)
    if k.get(1) != 2:
        raise Bad("realm key: not an EC2 COSE_Key")
    curve = {1: ec.SECP256R1(), 2: ec.SECP384R1()}.get(k.get(-1))
    if curve is None:
        raise Bad(f"realm key: unsupported curve {k.get(-1)}")
    x, y = k[-2], k[-3]
    return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve).public_key()


def verify(token, challenge, key=None, expect_rim=None, expect_rem=()):
    top = cbor2.loads(token)
    if not (isinstance(top, cbor2.CBORTag) and top.tag == 399 and isinstance(top.value, dict)):
        raise Bad("not a CCA token (CBOR tag 399 over a map)")
    ptok, rtok = top.value.get(44234), top.value.get(44241)
    if not isinstance(ptok, bytes) or not isinstance(rtok, bytes):
        raise Bad("token lacks 44234 (platform) or 44241 (realm) byte strings")

    prot, payload, sig, alg = sign1(rtok, "realm token")
    realm = cbor2.loads(payload)
    if realm.get(265) != REALM_PROFILE:
        raise Bad(f"realm profile {realm.get(265)!r}")
    rkey_raw = realm[44237]
    check_sig(cose_key(rkey_raw), prot, payload, sig, alg, "realm token")

    prot, payload, sig, palg = sign1(ptok, "platform token")
    if key is not None:
        check_sig(key, prot, payload, sig, palg, "platform token")
    plat = cbor2.loads(payload)
    if plat.get(265) != PLATFORM_PROFILE:
        raise Bad(f"platform profile {plat.get(265)!r}")
    halg = realm[44240]
    if plat[10] != HASHES[halg](rkey_raw).digest():
        raise Bad("binding broken: platform challenge is not the hash of the realm key")

    want = challenge + bytes(64 - len(challenge))
    if realm[10] != want:
        raise Bad("challenge does not match")
    mlen = HASHES[realm[44236]]().digest_size
    rems = realm[44239]
    if len(realm[44238]) != mlen or len(rems) != 4 or any(len(r) != mlen for r in rems):
        raise Bad("RIM/REM sizes do not match the hash algorithm")
    if expect_rim is not None and realm[44238] != expect_rim:
        raise Bad(f"RIM {realm[44238].hex()} is not the expected {expect_rim.hex()}")
    for idx, val in expect_rem:
        if rems[idx] != val:
            raise Bad(f"REM[{idx}] {rems[idx].hex()} is not the expected {val.hex()}")
    return {
        "challenge": realm[10].hex(),
        "personalization": realm[44235].hex(),
        "hash_alg": realm[44236],
        "rim": realm[44238].hex(),
        "rem": [r.hex() for r in rems],
        "pub_key_hash_alg": halg,
        "platform_lifecycle": plat[2395],
        "platform_implementation_id": plat[2396].hex(),
        "platform_instance_id": plat[256].hex(),
        "platform_hash_alg": plat[2402],
        "sw_components": [{"type": c.get(1), "measurement": c.get(2, b"").hex()} for c in plat[2399]],
        "platform_verified": key is not None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("token")
    ap.add_argument("--challenge", required=True)
    ap.add_argument("--key")
    ap.add_argument("--expect-rim")
    ap.add_argument("--expect-rem", action="append", default=[])
    ap.add_argument("--print", action="store_true")
    a = ap.parse_args()
    key = None
    if a.key:
        with open(a.key, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
    with open(a.token, "rb") as f:
        token = f.read()
    rems = []
    for r in a.expect_rem:
        i, h = r.split(":", 1)
        rems.append((int(i), bytes.fromhex(h)))
    try:
        claims = verify(token, bytes.fromhex(a.challenge), key,
                        bytes.fromhex(a.expect_rim) if a.expect_rim else None, rems)
    except (Bad, KeyError, ValueError, TypeError, AttributeError, cbor2.CBORDecodeError) as e:
        print(f"verify_token.py: {a.token}: {type(e).__name__ if not isinstance(e, Bad) else 'invalid'}: {e}",
              file=sys.stderr)
        return 1
    if a.print:
        json.dump(claims, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

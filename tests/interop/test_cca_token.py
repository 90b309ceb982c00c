#!/usr/bin/env python3
"""test_cca_token.py - tokens made by lib/ccatoken.c, checked by
verify_token.py (python3-cbor2 + python3-cryptography, no virtmgr code):
both realm curves verify with the right challenge, RIM and REM; a flipped
byte, the wrong challenge, the wrong RIM and the wrong platform key each
fail with a reason.
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

print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)

"""Key loading on the board: the generated airmark_keydata module validates; damage is caught.

Usage: mp_key.py  (with the directory holding airmark_keydata.py on the path)
"""

from mp_common import check, finish
import airmark_key
from airmark_keydata import KEY

check("keydata valid", airmark_key.problems(KEY) == [])
signs = airmark_key.signs(KEY)
check("signs", len(signs) == len(KEY["key_bits"]) and all(s in (0, 1) for s in signs))


def damaged(field, value):
    d = dict(KEY)
    if value is None:
        del d[field]
    else:
        d[field] = value
    return airmark_key.problems(d)


for field, value in (("threshold", KEY["threshold"] + 1), ("key_bits", "01" * 40),
                     ("checksum", None), ("version", 9), ("block_samples", 100)):
    p = damaged(field, value)
    check("reject " + field, len(p) > 0)
    print("  " + field + " -> " + p[0])
try:
    airmark_key.validate(dict(KEY, checksum="sha256:00"))
    check("KeyInvalid", False)
except airmark_key.KeyInvalid as exc:
    check("KeyInvalid", "checksum" in exc.problems[0])
finish()

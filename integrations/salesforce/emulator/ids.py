"""Salesforce record Ids: 15 case-sensitive characters plus a checksum.

https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/field_types.htm#i1435616
"""

import functools
import hashlib

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

# The characters between the key prefix and the sequence number stand where a
# real org puts its pod and reserved digits.
_MIDDLE = "5g0000"


def checksum(id15: str) -> str:
    """Return the 3-character suffix of a 15-character Id.

    One character per block of five; each bit says a character is a capital,
    which makes the 18-character Id unique without regard to case.
    """
    suffix = ""
    for block in range(3):
        bits = 0
        for position, char in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX[bits]
    return suffix


def make_id(key_prefix: str, sequence: int) -> str:
    """Return the 18-character Id of the `sequence`-th record of an object."""
    sequence = (sequence + _offset(key_prefix)) % 62**6
    digits = ""
    while sequence:
        sequence, remainder = divmod(sequence, 62)
        digits = _BASE62[remainder] + digits
    id15 = key_prefix + _MIDDLE + digits.rjust(6, "0")
    if len(id15) != 15:
        raise ValueError(f"sequence too large for key prefix {key_prefix}")
    return id15 + checksum(id15)


@functools.cache
def _offset(key_prefix: str) -> int:
    # Start each object at its own offset so that Ids mix capitals, small
    # letters and digits as real ones do, and checksums vary.
    return int.from_bytes(hashlib.blake2b(key_prefix.encode()).digest()[:4])


def to_18(value: str) -> str | None:
    """Return the canonical 18-character form of an Id, or None.

    An 18-character Id may come in any case: its suffix says which
    characters are capitals.
    """
    if len(value) == 15 and value.isalnum() and value.isascii():
        return value + checksum(value)
    if len(value) != 18 or not value.isalnum() or not value.isascii():
        return None
    suffix = value[15:].upper()
    if any(char not in _SUFFIX for char in suffix):
        return None
    chars = []
    for block in range(3):
        bits = _SUFFIX.index(suffix[block])
        for position in range(5):
            char = value[block * 5 + position]
            upper = bits & (1 << position)
            chars.append(char.upper() if upper else char.lower())
    id15 = "".join(chars)
    if checksum(id15) != suffix:
        return None
    return id15 + suffix


def is_valid_id(value: str) -> bool:
    """Tell whether `value` is an 18-character Id with a correct checksum."""
    return len(value) == 18 and to_18(value) == value

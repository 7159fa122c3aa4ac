import re

# A standard name (`Contact`, `MailingCountry`) or a custom one with an
# optional namespace (`Space__c`, `ns__Tier__c`, `Location__Latitude__s`).
# https://help.salesforce.com/s/articleView?id=sf.custom_field_attributes.htm
_API_NAME = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__)?"
    r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*(?:__[a-z]{1,3})?$"
)


def is_api_name(text: str) -> bool:
    """Tell whether `text` can be a Salesforce object or field API name."""
    return len(text) <= 100 and bool(_API_NAME.match(text))


# The last three characters of an 18-character Id, one per block of five of
# the first fifteen: bit n of a block's number says its n-th character is a
# capital. They make the Id unique whatever the case it is written in.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/field_types.htm#i1435616
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_suffix(id15: str) -> str:
    """Return the three characters that make a 15-character Id 18 long."""
    suffix = ""
    for start in (0, 5, 10):
        block = id15[start : start + 5]
        bits = sum(1 << n for n, char in enumerate(block) if "A" <= char <= "Z")
        suffix += _ID_SUFFIX[bits]
    return suffix


def id_problem(value: str) -> str | None:
    """Say why `value` cannot be a Salesforce record Id, or None if it can.

    An 18-character Id may have been changed to one case (it stays valid:
    its suffix says which characters are capitals), so its suffix is
    checked against the first fifteen only when they mix both cases.
    """
    if not (len(value) in (15, 18) and value.isascii() and value.isalnum()):
        return "an Id has 15 or 18 letters and digits"
    if len(value) == 15:
        return None
    suffix = value[15:].upper()
    if any(char not in _ID_SUFFIX for char in suffix):
        return "its last three characters cannot end an Id"
    head = value[:15]
    if head != head.upper() and head != head.lower() and id_suffix(head) != suffix:
        return "its last three characters do not match the first fifteen"
    return None

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

import ipaddress
import re
from urllib.parse import urlsplit

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$"
)


class InvalidWebsite(ValueError):
    pass


def domain_from_website(website: str | None) -> str | None:
    """Return the domain that identifies an organisation's website.

    Scheme, `www.`, credentials, port, path, query and case are dropped:
    `HTTP://WWW.Example.com:443/about?x=1` gives `example.com`. Empty input
    gives None; anything that has no plausible host name raises InvalidWebsite.
    """
    text = (website or "").strip()
    if not text:
        return None
    if "://" not in text:
        text = f"http://{text}"
    try:
        host = urlsplit(text).hostname or ""
    except ValueError as exc:
        raise InvalidWebsite(f"{website!r} is not a website address") from exc

    host = host.rstrip(".")
    try:
        # Internationalised names are compared in their ASCII form.
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidWebsite(f"{website!r} is not a website address") from exc
    if host.startswith("www."):
        host = host[4:]
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        # An address names a machine, not a company.
        raise InvalidWebsite(f"{website!r} is an IP address, not a website")
    if not _HOSTNAME.match(host):
        raise InvalidWebsite(f"{website!r} is not a website address")
    return host

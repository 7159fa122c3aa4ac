import pytest

from people.domains import InvalidWebsite, domain_from_website


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("HTTP://WWW.Example.com:443/about?x=1", "example.com"),
        ("https://example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("example.com/", "example.com"),
        ("  shop.example.co.uk  ", "shop.example.co.uk"),
        ("https://user:secret@www.example.com/path#part", "example.com"),
        ("http://www.example.com.", "example.com"),
        ("https://bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_it_reduces_a_website_to_its_domain(website, domain):
    assert domain_from_website(website) == domain


@pytest.mark.parametrize("website", [None, "", "   "])
def test_it_gives_no_domain_for_an_empty_website(website):
    assert domain_from_website(website) is None


@pytest.mark.parametrize(
    "website",
    [
        "not a website",
        "http://",
        "localhost",
        "http://exa mple.com",
        "-.com",
        "10.0.0.10",
        "http://[::1]/",
    ],
)
def test_it_refuses_what_is_not_a_website(website):
    with pytest.raises(InvalidWebsite):
        domain_from_website(website)

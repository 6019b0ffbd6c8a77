"""The proxy a URL is reached through, from the environment, by curl's rules (agent/forward/proxy_env.py)."""

from __future__ import annotations

import pytest

from weightwarden.agent.forward.proxy_env import Proxy, ProxyConfigError, bypassed, proxy_for


@pytest.mark.parametrize(("host", "no_proxy", "direct"), [
    # curl's own examples (CURLOPT_NOPROXY): a name matches itself and the names under it, nothing else
    ("ample.com", "ample.com", True),
    ("www.ample.com", "ample.com", True),
    ("www.example.com", "ample.com", False),
    ("ample.com.org", "ample.com", False),
    ("siem.example.org", ".example.org", True),
    ("example.org", ".example.org", True),
    ("SIEM.Example.ORG.", "example.org", True),  # case and a trailing dot do not matter
    ("siem.example.org", "example.org:8088", True),  # a port in the entry is ignored
    ("10.1.2.3", "10.0.0.0/8", True),  # CIDR (curl 7.86)
    ("11.1.2.3", "10.0.0.0/8", False),
    ("10.1.2.3", "10.1.2.3", True),
    ("10.1.2.30", "10.1.2.3", False),  # an address is not a name suffix
    ("siem.example.org", "10.0.0.0/8", False),  # names are not resolved to match addresses
    ("fd00::5", "fd00::/8", True),
    ("[fd00::5]", "fd00::5", True),
    ("anything", "*", True),
    ("anything", "a.org,*", False),  # * is a wildcard only alone, as curl has it
    ("siem.example.org", "", False),
    # always direct, as if NO_PROXY held localhost,127.0.0.1,::1
    ("127.0.0.1", "", True),
    ("localhost", "example.org", True),
    ("::1", "", True),
    ("127.0.0.2", "", False),
])
def test_no_proxy_matches_like_curl(host: str, no_proxy: str, direct: bool) -> None:
    assert bypassed(host, no_proxy) is direct


def test_the_variables_and_their_precedence() -> None:
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "lower:8080", "HTTP_PROXY": "http://plain:80",
           "ALL_PROXY": "http://all:1"}
    assert proxy_for("https", "siem.example.org", env) == Proxy("http://lower:8080", variable="https_proxy")
    assert proxy_for("http", "siem.example.org", env) == Proxy("http://plain:80", variable="HTTP_PROXY")
    assert proxy_for("https", "siem.example.org", {"ALL_PROXY": "http://all:1"}) == Proxy("http://all:1",
                                                                                         variable="ALL_PROXY")
    assert proxy_for("https", "siem.example.org", {"https_proxy": "", "HTTP_PROXY": "http://p:1"}) is None
    assert proxy_for("https", "siem.example.org", {**env, "NO_PROXY": "example.org"}) is None
    assert proxy_for("https", "siem.example.org", {**env, "no_proxy": "other.org", "NO_PROXY": "example.org"}) \
        is not None  # lower case wins
    assert proxy_for("https", "127.0.0.1", env) is None


def test_proxy_urls() -> None:
    assert proxy_for("https", "s.example.org", {"https_proxy": "proxy.corp"}) == Proxy(
        "http://proxy.corp:1080", variable="https_proxy")  # curl's defaults: http://, port 1080
    assert proxy_for("https", "s.example.org", {"https_proxy": "http://us%40er:p%3Ass@[fd00::1]:3128/"}) == Proxy(
        "http://[fd00::1]:3128", "us@er", "p:ss", "https_proxy")
    with pytest.raises(ProxyConfigError, match="HTTPS_PROXY='socks5h://p:1080': only http:// and https://"):
        proxy_for("https", "s.example.org", {"HTTPS_PROXY": "socks5h://p:1080"})

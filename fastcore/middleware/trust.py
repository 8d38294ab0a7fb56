"""Which peers are trusted to speak for the client: the forwarding fields
(X-Forwarded-*, X-Real-IP, X-Request-ID) of a request count only when the
peer that sent it is in ``forwarded_allow_ips``. One decision, used by the
proxy (fastcore.worker) and the shipped middlewares."""
import ipaddress
from typing import Callable, Iterable

__all__ = ["trusted_peers", "trust_option"]

_CACHE_LIMIT = 4096


def trusted_peers(cidrs: Iterable[str]) -> Callable[[str], bool]:
    """A callable(peer address) -> bool for addresses and networks such as
    ``127.0.0.1/8``, ``::1``; ``*`` trusts everyone. A unix socket peer (an
    empty address) is local, so trusted. Answers are cached per address;
    raises ValueError for a malformed network."""
    cidrs = [cidrs] if isinstance(cidrs, str) else list(cidrs)
    items = [item.strip() for text in cidrs for item in str(text).split(",") if item.strip()]
    if "*" in items:
        return lambda ip: True
    networks = [ipaddress.ip_network(item, strict=False) for item in items]
    cache = {}

    def trusted(ip):
        answer = cache.get(ip)
        if answer is None:
            try:
                address = ipaddress.ip_address(ip)
                answer = any(address in network for network in networks)
            except ValueError:
                answer = ip == ""
            if len(cache) < _CACHE_LIMIT:
                cache[ip] = answer
        return answer

    return trusted


def trust_option(forwarded_allow_ips) -> Callable[[str], bool]:
    """trusted_peers() for a middleware's ``forwarded_allow_ips`` option: a
    malformed value is a ValueError that names the option (the chain turns
    it into one line)."""
    try:
        return trusted_peers(forwarded_allow_ips)
    except ValueError:
        raise ValueError(f"option forwarded_allow_ips: expected addresses or networks such as 127.0.0.1/8, "
                         f"got {forwarded_allow_ips!r}") from None

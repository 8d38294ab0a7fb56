"""The reverse proxy's policy: which upstream member takes a request
(balancer.py), whether members are alive (health.py) and which addresses a
DNS name stands for (discovery.py). The compiled data path (connections,
pools of upstream sockets, streaming) calls `Pool.pick` once per request and
updates the members' counters itself; see balancer.py for that contract."""
from fastcore.proxy.balancer import BALANCE_METHODS, PANIC_MODES, Member, Pool, parse_address
from fastcore.proxy.discovery import DnsError, Discovery, Resolution, resolve
from fastcore.proxy.health import HealthCheck, Prober, next_delay

__all__ = ["BALANCE_METHODS", "PANIC_MODES", "Member", "Pool", "parse_address",
           "HealthCheck", "Prober", "next_delay",
           "resolve", "Resolution", "Discovery", "DnsError"]

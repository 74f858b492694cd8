"""The ``dns://name?type=A&server=1.1.1.1`` check: one query through dnspython's resolver.

``[DNS_RCODE]`` is the reply's rcode as text (``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``...),
``[BODY]`` the answers of the asked type one per line (``93.184.216.34``; empty when
there are none), ``[CONNECTED]`` whether any reply arrived.  With no ``server`` the
system's resolver configuration (``/etc/resolv.conf``) is used.  An rcode other than
NOERROR is an answer, not a failure: the conditions judge it.  No reply in time, or no
server reachable, is data (``error_kind`` ``timeout`` / ``refused`` / ``dns``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rcode
import dns.resolver

from jobs.probe.facts import Facts
from jobs.probe.kinds.address import DnsTarget
from jobs.probe.kinds.failure import ErrorKind, elapsed_ms, failed, from_exception, timed_out

log = logging.getLogger(__name__)


@functools.cache
def system_resolver() -> dns.asyncresolver.Resolver:
    """The system's resolver, its configuration read once per process."""
    return dns.asyncresolver.Resolver(configure=True)


@functools.lru_cache(maxsize=1024)
def server_resolver(server: str, port: int) -> dns.asyncresolver.Resolver:
    """A resolver asking only ``server``: a resolver keeps no state between queries."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.port = port
    return resolver


async def probe_dns(
    target: DnsTarget, *, timeout: float, resolver: dns.asyncresolver.Resolver | None = None
) -> Facts:
    """Ask for ``target``'s records within ``timeout`` seconds; the facts of the reply.

    ``resolver`` replaces the system's one when the address names no server.
    """
    started = time.perf_counter()
    try:
        if target.server is not None:
            resolver = server_resolver(target.server, target.server_port)
        elif resolver is None:
            resolver = system_resolver()
        async with asyncio.timeout(timeout):
            answer = await resolver.resolve(
                target.name,
                target.record_type,
                lifetime=timeout,
                search=False,
                raise_on_no_answer=False,
            )
    except (TimeoutError, dns.exception.Timeout):
        return timed_out(timeout, started, f"no DNS reply for {target.name}")
    except dns.resolver.NXDOMAIN:
        return _replied("NXDOMAIN", "", started)
    except dns.resolver.YXDOMAIN:
        return _replied("YXDOMAIN", "", started)
    except dns.resolver.NoNameservers as exc:
        return _no_good_answer(exc, started)
    except dns.resolver.NoResolverConfiguration as exc:
        return failed(ErrorKind.DNS.value, f"no system DNS resolver configured: {exc}", started)
    except Exception as exc:  # failures are data (jobs/probe/kinds/failure.py)
        return from_exception(exc, started)
    rrset = answer.rrset
    body = "\n".join(rdata.to_text() for rdata in rrset) if rrset is not None else ""
    return _replied(dns.rcode.to_text(answer.response.rcode()), body, started)


def _replied(rcode: str, body: str, started: float) -> Facts:
    return Facts(connected=True, response_time_ms=elapsed_ms(started), dns_rcode=rcode, body=body)


def _no_good_answer(exc: dns.resolver.NoNameservers, started: float) -> Facts:
    """Every server failed: the last reply's rcode (``SERVFAIL``, ``REFUSED``...) when
    one replied, else the last transport error."""
    errors = exc.kwargs.get("errors") or []
    for *_, response in reversed(errors):
        if isinstance(response, dns.message.Message):
            return _replied(dns.rcode.to_text(response.rcode()), "", started)
    for *_, error, _response in reversed(errors):
        if isinstance(error, BaseException):
            return from_exception(error, started)
    return failed(ErrorKind.CONNECTION.value, str(exc), started)

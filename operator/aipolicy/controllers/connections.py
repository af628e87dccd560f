"""The operator's connections to the API server: kopf's session, with a bounded pool.

kopf's built-in session opens as many connections as there are requests in flight (aiohttp
with no limit). When a thousand requests are sent within a second, they open a thousand TLS
connections at once; their OpenSSL buffers live outside Python's
heap, and glibc keeps the memory after they close: at 1,000 services the operator stayed at
~500 MiB resident while Python itself held ~55 MiB (measured with tracemalloc and
malloc_stats; BENCHMARKS.md). This login handler builds the same session as kopf's
`login_via_client` but with a bounded pool, so a burst of writes waits for a connection
instead of opening one each.

Watch streams each hold a connection for as long as they run (one per watched resource and
namespace), so the bound is those plus `REQUESTS_IN_FLIGHT`: requests never starve a watch,
and a watch never waits behind a burst of requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf

#: Concurrent API requests besides the watch streams. On loopback a patch takes a few
#: milliseconds, so this many in flight is well beyond the rate the API server accepts.
REQUESTS_IN_FLIGHT = 16
#: Watch streams per namespace watched (or for the whole cluster): the six resources of
#: handlers.py, and room for kopf's own (peering, CRD and namespace observers).
STREAMS_PER_SCOPE = 10
#: The memo key where run_operator leaves how many namespaces the operator watches (0: all).
NAMESPACES = "namespaces_watched"


def connection_limit(namespaces: int) -> int:
    """Connections for watches in `namespaces` namespaces (0: cluster-wide) and requests."""
    return STREAMS_PER_SCOPE * max(namespaces, 1) + REQUESTS_IN_FLIGHT


@kopf.on.login()
async def login_with_bounded_pool(
    logger: kopf.Logger, settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any
) -> kopf.AiohttpSession | None:
    # kubeconfig or in-cluster, read as kopf does (files: off the event loop); the session
    # itself must be made on the loop it will run on
    info = await asyncio.to_thread(kopf.login_via_client, logger=logger, settings=settings, **kwargs)
    if info is None:
        return None
    limit = connection_limit(int(memo.get(NAMESPACES, 0)))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        trust_env=info.trust_env,
    )
    logger.debug("API connections bounded at %d", limit)
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )

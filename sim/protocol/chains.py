"""The shared protocol's request chains, compiled: a login snapshot, a
status write and a batch read, each in one call over the tiers' states.

The steps are those `sim.protocol.base.Strategy` describes; every job goes
through `sim.fifo.serve_one`, so a chain queues exactly as the same jobs
handed to the tiers one by one would. Tiers are given as their buffers
(`Tier.buffers`), and a user's server at a tier is the user number modulo
its servers.
"""

import numpy as np

from sim.fifo import CACHE, FREE, SCRATCH_INTS, serve_one, unpack
from sim.jit import kernel_without_refcounts
from sim.metrics import bin_of

# Operation indices of a login, in the order `login_chain` takes them.
LOGIN_OPS = (
    ("gateway", "request"),
    ("presence", "login"),
    ("cache", "set"),
    ("db", "friends"),
    ("cache", "get"),
    ("gateway", "deliver"),
)


@kernel_without_refcounts
def read_statuses(
    cache_buffers: tuple,
    get: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    row: int,
    time: float,
    now: float,
) -> float:
    """One batch read of the statuses of the keys in `row` of a CSR: one
    request to each cache shard holding some of them, costing one `get` per
    key; returns when the slowest shard has answered."""
    cache = unpack(cache_buffers[0], cache_buffers[1])
    shards = cache[FREE].shape[0]
    # The cache tier's scratch integers hold the keys per shard.
    per_shard = cache[SCRATCH_INTS][2 * CACHE :]
    per_shard[:] = 0
    for k in range(indptr[row], indptr[row + 1]):
        per_shard[indices[k] % shards] += 1
    done = time
    for shard in range(shards):
        if per_shard[shard] > 0:
            finish = serve_one(cache, time, shard, get, per_shard[shard], now)
            if finish > done:
                done = finish
    return done


@kernel_without_refcounts
def login_chain(
    gateway_buffers: tuple,
    presence_buffers: tuple,
    cache_buffers: tuple,
    db_buffers: tuple,
    ops: np.ndarray,
    friends_indptr: np.ndarray,
    friends_indices: np.ndarray,
    user: int,
    time: float,
    hop: float,
    now: float,
    latency: np.ndarray,
) -> tuple[float, float, float, int]:
    """A login snapshot: the gateway takes the request, the presence tier
    logs the user in, then writes its status to the cache while the db loads
    its friend list; one batch read of the friends' statuses follows, and
    the gateway delivers the view.

    Unless `latency` is empty, the login's latency (from `time` to the view
    at the client) is counted into it, as `sim.metrics.LogHistogram` counts.

    Returns when the presence tier is done, when the read is answered, the
    login's latency and how many friends' statuses were read.
    """
    gateway = unpack(gateway_buffers[0], gateway_buffers[1])
    presence = unpack(presence_buffers[0], presence_buffers[1])
    cache = unpack(cache_buffers[0], cache_buffers[1])
    db = unpack(db_buffers[0], db_buffers[1])
    gateway_server = user % gateway[FREE].shape[0]
    at_gateway = serve_one(gateway, time, gateway_server, ops[0], 1, now)
    ready = serve_one(
        presence, at_gateway + hop, user % presence[FREE].shape[0], ops[1], 1, now
    )
    serve_one(cache, ready + hop, user % cache[FREE].shape[0], ops[2], 1, now)
    listed = serve_one(db, ready + hop, user % db[FREE].shape[0], ops[3], 1, now)
    read = read_statuses(
        cache_buffers, ops[4], friends_indptr, friends_indices, user, listed + hop, now
    )
    shown = serve_one(gateway, read + hop, gateway_server, ops[5], 1, now)
    waited = shown + hop - time
    if len(latency):
        latency[bin_of(waited)] += 1
    return ready, read, waited, friends_indptr[user + 1] - friends_indptr[user]


@kernel_without_refcounts
def status_write(
    presence_buffers: tuple,
    cache_buffers: tuple,
    change: int,
    set_op: int,
    user: int,
    time: float,
    hop: float,
    now: float,
) -> float:
    """The presence tier applies a status change and writes it to the
    cache; returns when the presence tier is done."""
    presence = unpack(presence_buffers[0], presence_buffers[1])
    cache = unpack(cache_buffers[0], cache_buffers[1])
    ready = serve_one(presence, time, user % presence[FREE].shape[0], change, 1, now)
    serve_one(cache, ready + hop, user % cache[FREE].shape[0], set_op, 1, now)
    return ready

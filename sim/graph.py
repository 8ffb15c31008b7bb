"""Friend graphs and group memberships as CSR arrays.

`friends` holds F(u), the users u added (out-edges); `reverse` holds R(u),
the users who added u (in-edges). A push for a change of u goes to the online
part of R(u); a poll or a login snapshot reads the statuses of F(u). Groups are
held in both directions as well: `groups` (user -> groups) and `members`
(group -> users).
"""

import gzip
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sim import fanout as compiled
from sim.errors import PresenceSimError
from sim.scenario import (
    DegreeDistribution,
    EdgeListGraph,
    MembershipGroups,
    NoGroups,
    Scenario,
    SyntheticGraph,
    SyntheticGroups,
)

log = logging.getLogger(__name__)

_SEPARATORS = {"whitespace": r"\s+", "comma": ",", "tab": "\t"}


@dataclass(frozen=True)
class Csr:
    """Rows of column indices: row i is `indices[indptr[i]:indptr[i + 1]]`."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The concatenation of the given rows, in the given order."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return self.indices[:0]
        # Position k of the output reads indices[start of its row + offset].
        ends = np.cumsum(lengths)
        shift = np.repeat(starts - (ends - lengths), lengths)
        return self.indices[np.arange(total) + shift]

    def transpose(self, columns: int) -> "Csr":
        """The same relation read the other way, by one counting pass."""
        indptr, indices = compiled.transpose(self.indptr, self.indices, columns)
        return Csr(indptr, indices)


@dataclass(frozen=True)
class SocialGraph:
    """Users, their friend relation in both directions, and their groups.

    `ids` holds the original node id of each user of a loaded graph (user i
    is `ids[i]`); it is None for a synthetic graph.
    """

    users: int
    friends: Csr
    reverse: Csr
    groups: Csr
    members: Csr
    source: str
    ids: pd.Index | None = None

    @property
    def arcs(self) -> int:
        return len(self.friends.indices)

    def reciprocity(self, most: int = 2_000_000) -> float:
        """Share of arcs u->v whose reverse v->u exists too.

        Each arc v->u, read as u's reverse friend v, is looked up in u's
        friend list by a binary search run for all arcs at once. A graph of
        more than `most` arcs is measured on `most` arcs evenly spaced over
        all of them.

        Limitation: above `most` arcs the share is an estimate, with a
        standard error below 0.0004 at the default.
        """
        if self.arcs == 0:
            return 0.0
        step = -(-self.arcs // most)
        picked = np.arange(0, self.arcs, step)
        reverse = self.reverse
        # Arc `picked[k]` of the reverse lists is v = indices[k] in row u.
        users = np.searchsorted(reverse.indptr, picked, side="right") - 1
        others = reverse.indices[picked]
        return float(self._has_friend(users, others).mean())

    def _has_friend(self, users: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Whether each user has the matching other user in its friend list."""
        friends = self.friends
        if not _rows_sorted(friends):
            matrix = sp.csr_array(
                (
                    np.ones(len(friends.indices), np.bool_),
                    friends.indices,
                    friends.indptr,
                ),
                shape=(friends.rows, self.users),
            )
            matrix.sort_indices()
            friends = Csr(friends.indptr, matrix.indices)
        low = friends.indptr[users].copy()
        high = friends.indptr[users + 1].copy()
        # Narrow [low, high) to the first position not below the other user.
        while np.any(low < high):
            middle = (low + high) // 2
            active = low < high
            below = np.zeros(len(low), dtype=bool)
            below[active] = friends.indices[middle[active]] < others[active]
            low = np.where(active & below, middle + 1, low)
            high = np.where(active & ~below, middle, high)
        inside = low < friends.indptr[users + 1]
        found = np.zeros(len(users), dtype=bool)
        found[inside] = friends.indices[low[inside]] == others[inside]
        return found


def _rows_sorted(csr: Csr) -> bool:
    """Whether every row lists its column indices in ascending order."""
    return bool(compiled.rows_sorted(csr.indptr, csr.indices))


def build_graph(
    scenario: Scenario, graph_rng: np.random.Generator, group_rng: np.random.Generator
) -> SocialGraph:
    """Generate or load the friend graph and groups a scenario describes."""
    spec = scenario.graph
    if isinstance(spec, SyntheticGraph):
        users = scenario.population.users
        friends = synthetic_friends(users, spec.out_degree, graph_rng)
        ids: pd.Index | None = None
        source = f"synthetic, out-degree {spec.out_degree.distribution}"
    else:
        _refuse_users_beside_a_graph_file(scenario)
        friends, ids = read_edge_list(spec)
        users = friends.rows
        source = Path(spec.path).name

    groups_spec = scenario.groups
    if isinstance(groups_spec, SyntheticGroups):
        members = synthetic_groups(
            users, groups_spec.groups_per_user, groups_spec.group_size, group_rng
        )
    elif isinstance(groups_spec, MembershipGroups):
        members, ids = read_memberships(groups_spec, ids, users)
        if ids is not None and len(ids) > users:
            # Users who are only in the membership file have no friends.
            extra = len(ids) - users
            friends = Csr(
                np.concatenate(
                    [friends.indptr, np.full(extra, friends.indptr[-1], np.int64)]
                ),
                friends.indices,
            )
            users = len(ids)
    else:
        assert isinstance(groups_spec, NoGroups)
        members = Csr(np.zeros(1, np.int64), np.zeros(0, np.int32))

    reverse = friends.transpose(users)
    groups = members.transpose(users)
    log.info(
        "graph: %d users, %d arcs, %d groups", users, len(friends.indices), members.rows
    )
    return SocialGraph(users, friends, reverse, groups, members, source, ids)


def check_data_files(scenario: Scenario) -> None:
    """Read the scenario's graph and membership files, to report a bad one
    before a run starts."""
    ids = None
    users = scenario.population.users
    if isinstance(scenario.graph, EdgeListGraph):
        _refuse_users_beside_a_graph_file(scenario)
        friends, ids = read_edge_list(scenario.graph)
        users = friends.rows
    if isinstance(scenario.groups, MembershipGroups):
        read_memberships(scenario.groups, ids, users)


def _refuse_users_beside_a_graph_file(scenario: Scenario) -> None:
    if "users" in scenario.population.model_fields_set:
        raise PresenceSimError(
            "population.users: the graph file decides the number of users; "
            "remove population.users or use graph.kind: synthetic"
        )


def out_degrees(
    users: int, spec: DegreeDistribution, rng: np.random.Generator
) -> np.ndarray:
    """Draw every user's friend count, clipped to the users available."""
    if spec.distribution == "fixed":
        degrees = np.full(users, round(spec.mean))
    elif spec.distribution == "poisson":
        degrees = rng.poisson(spec.mean, users)
    else:
        sigma2 = np.log1p(spec.cv**2)
        mu = np.log(spec.mean) - sigma2 / 2
        degrees = np.rint(rng.lognormal(mu, np.sqrt(sigma2), users))
    if degrees.max(initial=0) > users - 1:
        log.warning(
            "graph.out_degree: %d users cannot add more than %d friends each; "
            "larger out-degrees are cut to %d",
            users,
            users - 1,
            users - 1,
        )
    return np.clip(degrees, 0, users - 1).astype(np.int64)


def synthetic_friends(
    users: int, spec: DegreeDistribution, rng: np.random.Generator
) -> Csr:
    """Every user adds `out-degree` distinct other users chosen at random."""
    degrees = out_degrees(users, spec, rng)
    indptr = np.zeros(users + 1, np.int64)
    np.cumsum(degrees, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int32)

    # Rows of equal length are drawn together as one 2-D block.
    order = np.argsort(degrees, kind="stable")
    boundaries = np.flatnonzero(np.diff(degrees[order])) + 1
    for block in np.split(order, boundaries):
        degree = int(degrees[block[0]])
        if degree == 0:
            continue
        chosen = _distinct_others(block, degree, users, rng)
        positions = indptr[block][:, None] + np.arange(degree)
        indices[positions.ravel()] = chosen.ravel()
    return Csr(indptr, indices)


def _distinct_others(
    rows: np.ndarray, degree: int, users: int, rng: np.random.Generator
) -> np.ndarray:
    """For each row user, `degree` distinct users other than itself, sorted."""
    if degree * 4 > users:
        # Dense rows: a random permutation of the others beats redrawing.
        keys = rng.random((len(rows), users))
        keys[np.arange(len(rows)), rows] = 2.0
        return np.sort(np.argpartition(keys, degree - 1, axis=1)[:, :degree], axis=1)

    draws = rng.integers(0, users - 1, size=(len(rows), degree))
    draws += draws >= rows[:, None]
    while True:
        draws.sort(axis=1)
        repeated = np.zeros(draws.shape, dtype=bool)
        repeated[:, 1:] = draws[:, 1:] == draws[:, :-1]
        count = int(repeated.sum())
        if count == 0:
            return draws
        row_of = np.nonzero(repeated)[0]
        fresh = rng.integers(0, users - 1, size=count)
        fresh += fresh >= rows[row_of]
        draws[repeated] = fresh


def synthetic_groups(
    users: int, groups_per_user: int, group_size: int, rng: np.random.Generator
) -> Csr:
    """Every user joins `groups_per_user` groups of `group_size` members.

    Each round deals a random permutation of all users into consecutive groups,
    so a user is in exactly one group per round and never twice in a group.
    When `users` is not a multiple of `group_size`, the last group of a round
    is smaller.
    """
    if groups_per_user == 0:
        return Csr(np.zeros(1, np.int64), np.zeros(0, np.int32))
    if group_size > users:
        log.warning(
            "groups.group_size: %d exceeds the %d users; groups hold everyone",
            group_size,
            users,
        )
    size = min(group_size, users)
    per_round = -(-users // size)
    sizes = np.full(per_round, size, np.int64)
    sizes[-1] = users - size * (per_round - 1)
    all_sizes = np.tile(sizes, groups_per_user)
    indptr = np.zeros(len(all_sizes) + 1, np.int64)
    np.cumsum(all_sizes, out=indptr[1:])
    indices = np.concatenate(
        [rng.permutation(users).astype(np.int32) for _ in range(groups_per_user)]
    )
    return Csr(indptr, indices)


def read_edge_list(spec: EdgeListGraph) -> tuple[Csr, pd.Index]:
    """Read `src dst` lines; drop self-loops and repeated arcs.

    Lines starting with `#` or `%` are comments; a first line of words above
    lines of numbers is taken as a header. Node ids may be any strings;
    users are numbered in order of first appearance. An undirected edge
    becomes two arcs.
    """
    path = Path(spec.path)
    skip = _header_lines(path, _SEPARATORS[spec.delimiter])
    try:
        frame = pd.read_csv(
            path,
            sep=_SEPARATORS[spec.delimiter],
            comment="#",
            header=None,
            skiprows=skip,
            usecols=[0, 1],
            names=["src", "dst"],
            dtype=str,
            skip_blank_lines=True,
            compression="gzip" if _is_gzip(path) else None,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise PresenceSimError(
            f"graph.path: {path} is not an edge list of two columns separated "
            f"by {spec.delimiter} (check graph.delimiter): {exc}"
        ) from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise PresenceSimError(f"graph.path: cannot read {path}: {exc}") from None
    # `%` comment lines (KONECT style) come through as rows starting with `%`.
    frame = frame.dropna()
    frame = frame[~frame["src"].str.startswith("%")]
    frame = frame.apply(lambda column: column.str.strip())
    if frame.empty:
        raise PresenceSimError(f"graph.path: {path} holds no edges")

    codes, ids = pd.factorize(pd.concat([frame["src"], frame["dst"]]), sort=False)
    half = len(frame)
    src, dst = codes[:half], codes[half:]
    if not spec.directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    keep = src != dst
    arcs = pd.DataFrame({"src": src[keep], "dst": dst[keep]}).drop_duplicates()
    if arcs.empty:
        raise PresenceSimError(
            f"graph.path: {path} holds only self-loops, which are dropped"
        )

    users = len(ids)
    coo = sp.coo_array(
        (
            np.ones(len(arcs), dtype=np.bool_),
            (arcs["src"].to_numpy(), arcs["dst"].to_numpy()),
        ),
        shape=(users, users),
    )
    csr = coo.tocsr()
    csr.sort_indices()
    return Csr(csr.indptr.astype(np.int64), csr.indices.astype(np.int32)), pd.Index(ids)


def read_memberships(
    spec: MembershipGroups, ids: pd.Index | None, users: int
) -> tuple[Csr, pd.Index | None]:
    """Read group memberships; returns group -> members and the user ids.

    With a loaded graph, members are matched to its node ids as strings and
    unknown members become new users without friends. With a synthetic graph,
    members must be user numbers 0..users-1.
    """
    path = Path(spec.path)
    opener = gzip.open if _is_gzip(path) else open
    pairs: list[tuple[str, str]] = []
    separator = None if spec.delimiter == "whitespace" else _SEPARATORS[spec.delimiter]
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PresenceSimError(f"groups.path: cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text[0] in "#%":
            continue
        fields = [f.strip() for f in text.split(separator) if f.strip()]
        if spec.format == "pairs":
            if len(fields) < 2:
                raise PresenceSimError(
                    f"groups.path: {path} line {number}: expected 'node group'"
                )
            pairs.append((fields[0], fields[1]))
        else:
            label = " ".join(fields[: spec.skip_fields]) or f"line{number}"
            pairs.extend((member, label) for member in fields[spec.skip_fields :])
    if not pairs:
        raise PresenceSimError(f"groups.path: {path} holds no memberships")

    nodes = pd.Series([p[0] for p in pairs], dtype=str)
    labels = pd.Series([p[1] for p in pairs], dtype=str)
    if ids is None:
        numbers = pd.to_numeric(nodes, errors="coerce")
        if numbers.isna().any() or (numbers < 0).any() or (numbers >= users).any():
            raise PresenceSimError(
                f"groups.path: with a synthetic graph, members must be user "
                f"numbers 0..{users - 1}"
            )
        user_of = numbers.to_numpy(np.int64)
        all_ids = None
    else:
        known = ids.astype(str)
        unknown = pd.Index(nodes.unique()).difference(known, sort=False)
        if len(unknown):
            log.warning(
                "groups.path: %d members are not in the graph and join as users "
                "without friends (e.g. %s)",
                len(unknown),
                ", ".join(map(str, unknown[:5])),
            )
        all_ids = known.append(unknown)
        user_of = all_ids.get_indexer(nodes)

    group_of, _ = pd.factorize(labels)
    frame = pd.DataFrame({"group": group_of, "user": user_of}).drop_duplicates()
    total = len(all_ids) if all_ids is not None else users
    coo = sp.coo_array(
        (
            np.ones(len(frame), np.bool_),
            (frame["group"].to_numpy(), frame["user"].to_numpy()),
        ),
        shape=(int(group_of.max()) + 1, total),
    )
    csr = coo.tocsr()
    csr.sort_indices()
    return Csr(csr.indptr.astype(np.int64), csr.indices.astype(np.int32)), all_ids


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes, whatever its name."""
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise PresenceSimError(f"cannot read {path}: {exc}") from None


def _header_lines(path: Path, separator: str) -> int:
    """Lines to skip so that a first data line of non-numbers (a header) goes."""
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            head = [line for _, line in zip(range(200), handle, strict=False)]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise PresenceSimError(f"graph.path: cannot read {path}: {exc}") from None
    data = [
        (index, line.strip())
        for index, line in enumerate(head)
        if line.strip() and line.strip()[0] not in "#%"
    ][:2]
    if len(data) < 2:
        return 0
    numeric = [_numeric_pair(text, separator) for _, text in data]
    # A header is a line of words above lines of numbers.
    return data[0][0] + 1 if not numeric[0] and numeric[1] else 0


def _numeric_pair(text: str, separator: str) -> bool:
    fields = pd.read_csv(io.StringIO(text), sep=separator, header=None, dtype=str)
    return all(_is_number(v) for v in fields.iloc[0].tolist()[:2])


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True

"""Shared fixtures and hooks.

Tests that need the real benchmark data read its location from ``MOLCHANNEL_DATA_DIR`` (the
``data_dir`` fixture) and are skipped, with the reason shown, when it is unset (CI always sets it).
Every test that uses ``data_dir`` or ``zinc_smiles`` is marked ``data`` automatically
(``pytest -m "not data"`` runs the rest). No test may use the network: connections and name
lookups of other hosts than this one raise :class:`NetworkAccessError` (see ``_no_network``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MOLCHANNEL_DATA_DIR")
    if not value:
        pytest.skip("MOLCHANNEL_DATA_DIR is not set; point it at the benchmark data folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"MOLCHANNEL_DATA_DIR={value!r} is not a directory")
    return path


@pytest.fixture(scope="session")
def zinc_smiles(data_dir: Path) -> list[str]:
    """The first 2,000 molecules of the MOSES ZINC15 training set."""
    import gzip

    with gzip.open(data_dir / "zinc" / "moses_train.csv.gz", "rt") as fh:
        next(fh)
        return [next(fh).strip() for _ in range(2000)]


#: fixtures that read the benchmark data folder: a test that uses one (directly or through another
#: fixture) is marked ``data``
DATA_FIXTURES = ("data_dir", "zinc_smiles")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("data") is None and any(
            name in DATA_FIXTURES for name in getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.data)


# ---- no network -------------------------------------------------------------------------------
class NetworkAccessError(RuntimeError):
    """A test tried to reach another host. Not an OSError, so code that handles failed downloads
    cannot turn it into a quiet fallback: the test fails and names the host."""


def _is_this_machine(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None or host in ("", "localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])  # an IPv6 scope (fe80::1%eth0) aside
    except ValueError:
        return str(host).endswith(".localhost")
    return address.is_loopback or address.is_unspecified


@pytest.fixture(scope="session", autouse=True)
def _no_network() -> Iterator[None]:
    """Refuse connections to, and name lookups of, any host but this machine, for the whole session.

    Loopback stays open (a test may start a local server, or expect a refused connection on
    127.0.0.1); Unix sockets are untouched. Subprocesses that tests start are not covered.
    """
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(family: int, address: object) -> None:
        internet = family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
        if internet and not _is_this_machine(address[0]):
            raise NetworkAccessError(f"tests must not use the network (connection to {address[0]!r})")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(self.family, address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(self.family, address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_this_machine(host):
            raise NetworkAccessError(f"tests must not use the network (name lookup of {host!r})")
        return getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for name in ("no_proxy", "NO_PROXY"):  # no HTTP proxy on this machine, whose address the guard allows
            patch.setenv(name, "*")
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield


# ---- property-based tests (hypothesis) --------------------------------------------------------
# One shared profile keeps them deterministic and CI-friendly: the same examples on every run
# (derandomize, no example database), no per-example deadline (CI machines are slow and shared).
# Tests pick their own ``max_examples`` on top of it.
settings.register_profile(
    "molchannel-ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_CASE_COUNTS = pytest.StashKey[dict[str, int]]()


@pytest.fixture(scope="session")
def count_case(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``count_case(name)`` once per generated example: the totals are printed after the run."""
    counts = request.config.stash.setdefault(_CASE_COUNTS, {})

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    return count


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print how many generated cases each property ran, so CI logs show "N cases" per property."""
    counts = config.stash.get(_CASE_COUNTS, {})
    if counts:
        terminalreporter.section("property-based tests: generated cases")
        for name, n in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {n} cases")
        terminalreporter.write_line(f"total: {sum(counts.values())} cases")


@pytest.fixture(scope="module")
def one_thread_private_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a generator fixture
    """One torch thread (bitwise-reproducible training) and a private graph cache, for one test module."""
    threads = torch.get_num_threads()
    old_cache = os.environ.get("MOLCHANNEL_CACHE_DIR")
    torch.set_num_threads(1)
    os.environ["MOLCHANNEL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    torch.set_num_threads(threads)
    if old_cache is None:
        os.environ.pop("MOLCHANNEL_CACHE_DIR", None)
    else:
        os.environ["MOLCHANNEL_CACHE_DIR"] = old_cache

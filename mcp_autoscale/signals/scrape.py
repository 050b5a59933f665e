"""Signals straight from the pods' ``/metrics`` endpoints, for when Prometheus lag (30-90 s) is too slow.

Every pod is scraped concurrently with one bounded timeout. Gauges are read from the current scrape;
counters and histograms need the previous scrape of the same URL (kept in memory with its time), so the
first round reports rates and percentiles as missing ("need two scrapes") instead of guessing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import httpx

from mcp_autoscale.config import Settings
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import SIGNAL_NAMES, PoolSignals, PoolState, SignalReport
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.common import NO_DIALECT, SERIES_ABSENT, check_overrides, not_exposed
from mcp_autoscale.signals.dialects.spec import Dialect, Kind
from mcp_autoscale.signals.exposition import Scrape, counter_rate, gauge_value, parse, quantile_value

log = get_logger(__name__)

NEED_TWO = "need two scrapes"


class ScrapeSource:
    """``SignalSource`` that reads ``PoolState.metrics_urls`` directly."""

    name = "scrape"

    def __init__(
        self,
        settings: Settings,
        *,
        dialect_overrides: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_workers: int = 16,
        client: httpx.Client | None = None,
    ) -> None:
        self._settings = settings
        self._overrides = check_overrides(dialect_overrides)
        self._timeout = timeout_s if timeout_s is not None else settings.prometheus_timeout_s
        self._client = client or httpx.Client(timeout=httpx.Timeout(self._timeout), follow_redirects=False)
        self._max_workers = max_workers
        self._previous: dict[str, Scrape] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def _fetch(self, url: str) -> Scrape:
        resp = self._client.get(url)
        resp.raise_for_status()
        at = time.monotonic()
        try:
            samples = parse(resp.text)
        except ValueError as err:
            raise ValueError(f"unparseable exposition: {err}") from err
        return Scrape(url=url, at=at, samples=samples)

    def _scrape_all(self, urls: Sequence[str]) -> dict[str, Scrape | str]:
        """URL -> scrape, or the reason it failed; bounded by one deadline for all URLs."""
        if not urls:
            return {}
        pool = ThreadPoolExecutor(max_workers=min(self._max_workers, len(urls)), thread_name_prefix="scrape")
        futures: dict[str, Future[Scrape]] = {u: pool.submit(self._fetch, u) for u in urls}
        wait(futures.values(), timeout=self._timeout + 0.5)
        pool.shutdown(wait=False, cancel_futures=True)
        out: dict[str, Scrape | str] = {}
        for url, fut in futures.items():
            if not fut.done():
                fut.cancel()
                out[url] = f"scrape failed: no answer within {self._timeout:g} s"
                continue
            err = fut.exception()
            if err is None:
                out[url] = fut.result()
            elif isinstance(err, httpx.TimeoutException):
                out[url] = f"scrape failed: no answer within {self._timeout:g} s"
            elif isinstance(err, httpx.HTTPStatusError):
                out[url] = f"scrape failed: HTTP {err.response.status_code}"
            else:
                out[url] = f"scrape failed: {type(err).__name__}: {err}"
        return out

    def collect(self, pools: Sequence[PoolState]) -> SignalReport:
        now = datetime.now(UTC)
        urls = sorted({u for p in pools for u in p.metrics_urls})
        results = self._scrape_all(urls)
        report = SignalReport(source=self.name, collected_at=now, queries=len(urls))
        report.errors = sorted({f"{u}: {r}" for u, r in results.items() if isinstance(r, str)})
        with self._lock:
            previous = dict(self._previous)
            for url, r in results.items():
                if isinstance(r, Scrape):
                    self._previous[url] = r
        done = time.monotonic()
        for p in pools:
            report.pools[p.ref.key] = self._pool(p, results, previous, done)
        return report

    def _pool(
        self,
        pool: PoolState,
        results: Mapping[str, Scrape | str],
        previous: Mapping[str, Scrape],
        done: float,
    ) -> PoolSignals:
        if not pool.metrics_urls:
            return PoolSignals(missing=dict.fromkeys(SIGNAL_NAMES, "no metrics URLs known for this pool"))
        scrapes = [r for u in pool.metrics_urls if isinstance(r := results.get(u), Scrape)]
        failed = [r for u in pool.metrics_urls if isinstance(r := results.get(u), str)]
        if not scrapes:
            return PoolSignals(missing=dict.fromkeys(SIGNAL_NAMES, failed[0]))
        dialect: Dialect | None = self._overrides.get(pool.ref.key)
        if dialect is None:
            dialect = dialects.detect(set().union(*(s.names for s in scrapes)))
        if dialect is None:
            return PoolSignals(missing=dict.fromkeys(SIGNAL_NAMES, NO_DIALECT))
        partial = f"{failed[0]} ({len(failed)}/{len(pool.metrics_urls)} pods)" if failed else None
        pairs = [(previous[s.url], s) for s in scrapes if s.url in previous]
        sig = PoolSignals(dialect=dialect.name)
        for name in SIGNAL_NAMES:
            spec = dialect.signals.get(name)
            if spec is None:
                sig.missing[name] = not_exposed(dialect)
                continue
            # A sum over the pods that answered would under-count: report it missing instead.
            if (
                partial
                and not (spec.kind is Kind.GAUGE and spec.agg == "avg")
                and spec.kind is not Kind.QUANTILE
            ):
                sig.missing[name] = partial
                continue
            value: float | None
            if spec.kind is Kind.GAUGE:
                value = gauge_value(spec, scrapes)
            elif len(pairs) < len(scrapes):
                sig.missing[name] = NEED_TWO
                continue
            elif spec.kind is Kind.RATE:
                value = counter_rate(spec, pairs)
            else:
                value = quantile_value(spec, pairs)
                if value is not None and math.isnan(value):
                    sig.missing[name] = "no observations since the previous scrape"
                    continue
            if value is None:
                sig.missing[name] = SERIES_ABSENT
                continue
            setattr(sig, name, value)
            sig.age_s[name] = round(max(0.0, done - min(s.at for s in scrapes)), 3)
        return sig

"""The Kubernetes HPA's replica arithmetic for one External metric with an AverageValue target (pure).

Follows kubernetes/kubernetes ``pkg/controller/podautoscaler``: ``replica_calculator.go``
(``GetExternalPerPodMetricReplicas``: usage ratio = metric / (target x current), no change within the
10% tolerance, else ceil(metric / target)) and ``horizontal.go`` (``stabilizeRecommendationWithBehaviors``:
scale up to the *lowest* recommendation of the scale-up window, down to the *highest* of the scale-down
window; ``convertDesiredReplicasWithBehaviorRate``: Pods policies bound the change over a period).
Used by ``wva``, which publishes its desired replicas for an HPA to act on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


def hpa_raw_recommendation(metric: float, target: float, current: int, tolerance: float = 0.1) -> int:
    """ceil(metric / target), or ``current`` while the usage ratio is within ``tolerance`` of 1."""
    if current > 0 and abs(1.0 - metric / (target * current)) <= tolerance:
        return current
    return math.ceil(metric / target)


@dataclass
class Hpa:
    """One HPA's state: past recommendations and past scale events (for windows and rate policies)."""

    min_replicas: int
    max_replicas: int
    up_window_s: float = 240.0
    down_window_s: float = 240.0
    up_pods: int = 10
    down_pods: int = 10
    policy_period_s: float = 150.0
    tolerance: float = 0.1
    target: float = 1.0
    _recs: deque[tuple[float, int]] = field(default_factory=deque)
    _events: deque[tuple[float, int]] = field(default_factory=deque)

    def recommend(self, t_s: float, metric: float, current: int) -> int:
        """The replicas the HPA sets at ``t_s`` for ``metric`` (one sync)."""
        raw = hpa_raw_recommendation(metric, self.target, current, self.tolerance)
        keep = max(self.up_window_s, self.down_window_s)
        while self._recs and self._recs[0][0] <= t_s - keep:
            self._recs.popleft()
        up = down = raw
        for at, rec in self._recs:
            if at > t_s - self.up_window_s:
                up = min(up, rec)
            if at > t_s - self.down_window_s:
                down = max(down, rec)
        self._recs.append((t_s, raw))
        stabilised = min(max(current, up), down)
        # rate policies: at most up_pods added / down_pods removed within any policy period
        while self._events and self._events[0][0] <= t_s - self.policy_period_s:
            self._events.popleft()
        added = sum(d for _, d in self._events if d > 0)
        removed = -sum(d for _, d in self._events if d < 0)
        hi = max(current, current - added + self.up_pods)  # from the replicas at the period's start
        lo = min(current, current + removed - self.down_pods)
        out = max(min(stabilised, hi), lo) if stabilised != current else current
        out = max(self.min_replicas, min(self.max_replicas, out))
        if out != current:
            self._events.append((t_s, out - current))
        return out

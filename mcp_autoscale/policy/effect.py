"""What a ``patch_hpa`` does to a pool, so the policy judges the effect, not the field names.

A patch moves bounds, and the bounds move replicas: a floor above the current count scales out now, a
ceiling below it scales in now, pausing KEDA holds the count where it is and stops scale-out. A lower
floor, a lower ceiling, a pause or a new scale-down window lets capacity shrink (scale-in rules apply); a
higher ceiling, a higher floor, an unpause or a new scale-up window lets it grow. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_autoscale.models import Autoscaler, AutoscalerPatch, PoolState


@dataclass(frozen=True)
class PatchEffect:
    current: int  # desired replicas now
    forced: int  # desired replicas right after the patch (the current count clamped into the new bounds)
    permits_in: int  # replicas the autoscaler may remove that it could not before (a lower floor)
    lowers: bool  # capacity may shrink: scale-in guards, limits and approvals apply
    raises: bool  # capacity may grow: scale-out budgets and approvals apply

    @property
    def changes(self) -> bool:
        """Anything changes at all (cooldown applies): every change either lowers or raises."""
        return self.lowers or self.raises

    @property
    def forced_in(self) -> int:
        return max(0, self.current - self.forced)

    @property
    def forced_out(self) -> int:
        return max(0, self.forced - self.current)

    @property
    def scale_in(self) -> int:
        """Replicas the patch removes now or lets the autoscaler remove (max_scale_in counts these)."""
        return max(self.forced_in, self.permits_in)


def _differs(new: int | bool | None, old: int | bool | None) -> bool:
    return new is not None and new != old


def patch_effect(pool: PoolState, owner: Autoscaler, patch: AutoscalerPatch) -> PatchEffect:
    lo = owner.min_replicas if patch.min_replicas is None else patch.min_replicas
    hi = owner.max_replicas if patch.max_replicas is None else patch.max_replicas
    paused = owner.paused if patch.paused is None else patch.paused
    current = pool.desired_replicas
    forced = current if paused else min(max(current, lo), max(hi, lo))  # KEDA pause holds the count
    down_window = _differs(patch.scale_down_stabilization_s, owner.scale_down_stabilization_s)
    up_window = _differs(patch.scale_up_stabilization_s, owner.scale_up_stabilization_s)
    pauses = paused and not owner.paused
    unpauses = owner.paused and not paused
    lowers = forced < current or lo < owner.min_replicas or hi < owner.max_replicas
    raises = forced > current or lo > owner.min_replicas or hi > owner.max_replicas
    lowers = lowers or pauses or unpauses or down_window
    raises = raises or unpauses or up_window
    return PatchEffect(
        current=current,
        forced=forced,
        permits_in=max(0, owner.min_replicas - lo),
        lowers=lowers,
        raises=raises,
    )

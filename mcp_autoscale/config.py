"""Settings: one place, read from CLI options and ``MCP_AUTOSCALE_*`` environment variables.

Secrets are ``SecretStr`` so they never print in logs, reprs or tool output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_autoscale.models import SloTargets


def default_state_dir() -> Path:
    """Where the audit log and pending proposals live unless told otherwise (XDG state dir)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-autoscale"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCP_AUTOSCALE_", extra="ignore")

    # where the fleet lives
    backend: Literal["sim", "kubernetes"] = "sim"
    kubeconfig: Path | None = None
    kube_context: str | None = None
    clusters: dict[str, str] = Field(
        default_factory=dict,
        description="Several clusters: name -> kubeconfig context ('in-cluster' for the pod's own); "
        "pools then carry the name as `cluster`",
    )
    default_cluster: str | None = Field(default=None, description="Cluster of a pool named without one")
    pool_selector: str = Field(
        default="mcp-autoscale/pool=true",
        description="Label selector that marks Deployments serving models",
    )
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    kube_namespace: str = Field(
        default="mcp-autoscale", description="Namespace the server runs in (Leases, balloon Deployments)"
    )
    kube_cache: bool = Field(
        default=True,
        description="Long-running modes (serve, the agent's server): serve fleet reads from a watch cache "
        "(list once, then watch); the gate always reads the API server",
    )
    kube_cache_max_stale_s: float = Field(
        default=90.0,
        ge=5,
        le=3600,
        description="A watch broken this long makes reads fall back to live lists (and say so)",
    )
    kube_cache_resync_s: float = Field(
        default=600.0, ge=0, description="Relist every kind this often to correct any drift (0: never)"
    )

    # where the signals come from
    signal_source: Literal["auto", "sim", "prometheus", "scrape"] = "auto"
    prometheus_url: str | None = None
    prometheus_token: SecretStr | None = None
    prometheus_username: str | None = None
    prometheus_password: SecretStr | None = None
    prometheus_ca_file: Path | None = None
    prometheus_timeout_s: float = Field(default=5.0, gt=0, le=60)
    rate_window: str = Field(default="2m", pattern=r"^[0-9]+[smh]$")
    scrape_interval_s: float = Field(default=15.0, gt=0)
    stale_after_intervals: float = Field(default=2.0, gt=0)
    pool_label: str = Field(default="", description="Prometheus label naming the pool; '' = derive from pod")
    prometheus_recording_rules: bool = Field(
        default=False,
        description="Read per-pool histogram and counter rates from the recording rules printed by "
        "`mcp-autoscale signals rules` instead of aggregating raw series at query time",
    )
    dialect_overrides: dict[str, str] = Field(
        default_factory=dict, description="'namespace/deployment' -> dialect (vllm, sglang, tgi, ...)"
    )
    scrape_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Direct /metrics scrape timeout")

    # governance
    policy_file: Path | None = None
    audit_file: Path | None = None
    state_dir: Path = Field(default_factory=default_state_dir)
    dry_run: bool = False
    audit_hmac_key: SecretStr | None = None
    audit_rate_per_s: float = Field(
        default=10.0, ge=0, description="Audit records one caller may cause per second (0: no limit)"
    )
    audit_burst: int = Field(default=100, ge=1, description="Audit records one caller may cause at once")
    state_url: SecretStr | None = Field(
        default=None, description="postgresql://... : audit, proposals and locks in PostgreSQL (shared)"
    )
    state_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Wait at most this long for the state database"
    )
    runbooks_dir: Path | None = Field(
        default=None,
        description="A team's runbook folder, merged over the shipped runbooks (same slug: the team's wins)",
    )
    approval_webhook_url: str | None = Field(
        default=None, description="POST each pending proposal here (JSON with a Slack-compatible 'text')"
    )

    # simulator
    sim_seed: int = 7
    sim_scenario: str = "default"
    sim_clock: Literal["wall", "manual"] = Field(
        default="wall",
        description="wall: simulated time follows the wall clock; manual: only advance_simulation moves it",
    )

    sim_warmup_s: float = Field(
        default=0.0,
        ge=0,
        description="Extra simulated time before the first read (scenarios pre-roll already)",
    )

    # money and objectives
    price_catalogue: Path | None = None
    slo: SloTargets = Field(default_factory=SloTargets)

    # HTTP transport
    http_token: SecretStr | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    http_max_sessions: int = Field(default=1000, ge=1, description="Open MCP sessions, all callers")
    http_max_sessions_per_caller: int = Field(
        default=100,
        ge=1,
        description="Open MCP sessions per credential; past it its oldest idle one is ended",
    )
    http_session_idle_s: float = Field(default=300.0, gt=0, le=86400, description="Idle session lifetime")
    http_header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Time to send a request head"
    )
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=600, description="Time to send a request body")
    http_shutdown_s: int = Field(default=3, ge=0, le=60, description="Graceful shutdown limit on SIGTERM")

    # self-observability (docs/observability.md)
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /metrics on this port too (the only way on stdio)"
    )
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of --metrics-port")

    # OAuth 2.1 resource server (HTTP transport; docs/security.md, docs/deployment.md)
    oauth_issuer: str | None = Field(default=None, description="Issuer URL of the identity provider")
    public_url: str | None = Field(
        default=None,
        description="This server's public base URL; the resource (audience) is PUBLIC_URL + /mcp",
    )
    oauth_audience: str | None = Field(default=None, description="Expected 'aud' when not PUBLIC_URL + /mcp")
    oauth_user_claim: str = Field(default="sub", description="Claim naming the caller in the audit")
    oauth_name_claim: str = Field(default="name", description="Claim with the caller's display name")
    oauth_groups_claim: str = Field(default="groups", description="Claim with the caller's groups")
    oauth_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"],
        description="Accepted JWS algorithms (asymmetric only)",
    )
    oauth_leeway_s: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf")
    oauth_jwks_min_refresh_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="An unknown key id refetches the issuer's keys at most this often",
    )

    # the agent as an OAuth client (client-credentials grant)
    oauth_client_id: str | None = None
    oauth_client_secret_file: Path | None = None

    @property
    def resource_url(self) -> str | None:
        """The protected resource (RFC 9728 ``resource``): PUBLIC_URL + ``/mcp``."""
        return self.public_url.rstrip("/") + "/mcp" if self.public_url else None

    @field_validator("audit_hmac_key")
    @classmethod
    def _key_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty key would silently leave the log unsigned: refuse it at start-up."""
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "MCP_AUTOSCALE_AUDIT_HMAC_KEY is set but empty: give a key, or unset it to run unsigned"
            )
        return value

    @property
    def resolved_audit_file(self) -> Path:
        return self.audit_file or (self.state_dir / "audit.jsonl")

    @property
    def resolved_signal_source(self) -> str:
        if self.signal_source != "auto":
            return self.signal_source
        if self.prometheus_url:
            return "prometheus"
        return "sim" if self.backend == "sim" else "scrape"

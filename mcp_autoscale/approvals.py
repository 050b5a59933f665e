"""Pending proposals: actions a policy says a human must approve before they run.

One JSON file per proposal under ``<state_dir>/proposals`` (written atomically: temp file, fsync, rename),
so a terminal, a CI job and the server can all see and decide the same proposals. Proposals expire; the
gate re-checks policy and data freshness when one is finally executed. An optional webhook announces each
new proposal (JSON with a Slack-compatible ``text`` field) from a background thread: a slow or dead
webhook never delays or changes a verdict.
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.logs import get_logger, redact_urls
from mcp_autoscale.models import Action, Verdict
from mcp_autoscale.untrusted import neutralise, slack_escape, slack_quoted

log = get_logger(__name__)

ELICITATION_PREFIX = "mcp-elicitation:"
WEBHOOK_TIMEOUT_S = 3.0


class ProposalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # approved out of band, waiting for the process that owns the backend to run it
    EXECUTED = "executed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"  # approved, but the re-check or the backend refused it at execution time


class Proposal(BaseModel):
    id: str
    action: Action
    verdict: Verdict
    status: ProposalStatus = ProposalStatus.PENDING
    created_at: datetime
    expires_at: datetime
    via: list[str] = Field(description="Approval channels every deciding rule accepts: 'cli', 'elicitation'")
    approvers: list[str] = Field(default_factory=list, description="Who may approve (empty: anyone)")
    approver_groups: list[str] = Field(default_factory=list, description="Or anyone in these groups")
    four_eyes: bool = Field(default=False, description="The proposer may not approve it")
    audit_id: str | None = Field(default=None, description="The PENDING_APPROVAL audit record")
    pool_replicas: int | None = Field(default=None, description="Desired replicas when proposed")
    digest: str | None = Field(
        default=None, description="action_digest of the proposed action: what an approval must match"
    )
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    result_audit_id: str | None = None

    @property
    def target(self) -> str:
        from mcp_autoscale.policy import target_label

        return target_label(self.action)

    def summary(self) -> str:
        params = self.action.params.model_dump(mode="json", exclude={"kind"}, exclude_none=True)
        args = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{self.action.kind.value}({args}) on {self.target}"


def channel_of(approver: str) -> str:
    """'mcp-elicitation:<caller>' approves through the MCP client's user; anything else is out of band."""
    return "elicitation" if approver.startswith(ELICITATION_PREFIX) else "cli"


DELEGATED = " (delegated by "


def delegated(on_behalf_of: str, by: str) -> str:
    """An approver acting for someone else: both identities, e.g. 'cli:carol (delegated by cli:alice)'."""
    return f"{on_behalf_of}{DELEGATED}{by})"


def approver_name(approver: str) -> str:
    """The name approver lists are checked against (for a delegated approval: the one delegating)."""
    principal = approver.split(DELEGATED, 1)[0]
    return principal.split(":", 1)[1] if ":" in principal else principal


def principal(who: str) -> str:
    """The person behind a caller or approver name, for the four-eyes rule: a chat confirmation is its
    caller's own; 'cli:alice' and 'local:alice' are the same OS user; token identities stay as they are."""
    who = who.removeprefix(ELICITATION_PREFIX)
    for prefix in ("cli:", "local:"):
        if who.startswith(prefix):
            return "os:" + who[len(prefix) :]
    return who


def principals(approver: str) -> set[str]:
    """Every person an approval speaks for: a delegated one is both the named and the delegating person."""
    named, _, rest = approver.partition(DELEGATED)
    people = {principal(named)}
    if rest:
        people.add(principal(rest.removesuffix(")")))
    return people


def new_proposal_id() -> str:
    return f"prop-{uuid.uuid4().hex[:12]}"


class ProposalStore:
    """Proposals as files: easy to inspect, safe to share between processes on one host.

    Open proposals (pending, approved) live in the directory; closed ones move to ``closed/``, so the
    scan that every tool call makes (``all``) reads only what may still run, however long the history.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, proposal_id: str, *, closed: bool = False) -> Path:
        if not proposal_id.replace("-", "").isalnum():
            raise InvalidInput(f"{proposal_id!r} is not a proposal id (they look like prop-1a2b3c4d5e6f)")
        return (self.directory / "closed" if closed else self.directory) / f"{proposal_id}.json"

    def save(self, proposal: Proposal) -> None:
        closed = proposal.status not in (ProposalStatus.PENDING, ProposalStatus.APPROVED)
        path = self._path(proposal.id, closed=closed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(proposal.model_dump_json(indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if closed:  # written under closed/ first: a reader finds it in one place or the other
            self._path(proposal.id).unlink(missing_ok=True)

    def get(self, proposal_id: str) -> Proposal:
        for path in (self._path(proposal_id), self._path(proposal_id, closed=True)):
            try:
                return Proposal.model_validate_json(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except ValidationError as err:
                raise InvalidInput(f"{path}: unreadable proposal: {err.errors()[0]['msg']}") from None
        raise NotFound(f"no proposal {proposal_id!r} in {self.directory} (see `mcp-autoscale pending`)")

    def all(self) -> list[Proposal]:
        """The open proposals (closed ones are under ``closed/``; ``get`` still finds them)."""
        if not self.directory.exists():
            return []
        out = []
        for path in sorted(self.directory.glob("prop-*.json")):
            try:
                out.append(Proposal.model_validate_json(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # closed (moved) while we listed
            except (OSError, ValidationError) as err:
                log.warning("proposals.unreadable", file=str(path), error=str(err))
        return sorted(out, key=lambda p: p.created_at)


def webhook_payload(proposal: Proposal) -> dict[str, Any]:
    """JSON for the webhook: the proposal plus a Slack-compatible ``text``.

    The text is what a person reads in a channel: everything in it is neutralised to single lines and
    Slack-escaped (no ``<!channel>``, no links, no fake "approve ..." lines), and the agent's rationale
    comes last, quoted and labelled as its words. The structured fields keep the values as given.
    """
    a = proposal.action
    digest = f" --digest {proposal.digest[:12]}" if proposal.digest else ""
    text = (
        f":warning: mcp-autoscale needs approval: {slack_escape(neutralise(proposal.summary()))} "
        f"(proposal {proposal.id}).\n"
        f"Policy: {slack_escape(neutralise('; '.join(proposal.verdict.reasons)))}\n"
        f"Approve: `mcp-autoscale approve {proposal.id}{digest}`  Reject: `mcp-autoscale reject {proposal.id} "
        f"--reason ...`  Expires {proposal.expires_at.isoformat(timespec='seconds')}.\n"
        f"Rationale {slack_quoted(a.rationale)}"
    )
    return {
        "text": text,
        "proposal_id": proposal.id,
        "tool": a.kind.value,
        "target": proposal.target,
        "arguments": a.params.model_dump(mode="json", exclude={"kind"}, exclude_none=True),
        "rationale": a.rationale,
        "caller": a.caller,
        "reasons": proposal.verdict.reasons,
        "rules": proposal.verdict.rules,
        "approvers": proposal.approvers,
        "via": proposal.via,
        "expires_at": proposal.expires_at.isoformat(),
    }


def post_webhook(url: str, proposal: Proposal, *, timeout_s: float = WEBHOOK_TIMEOUT_S) -> threading.Thread:
    """Announce a proposal in the background; failures are logged, never raised."""

    def send() -> None:
        try:
            resp = httpx.post(url, json=webhook_payload(proposal), timeout=timeout_s)
            resp.raise_for_status()
            log.info("proposals.webhook_sent", proposal=proposal.id, status=resp.status_code)
        except httpx.HTTPError as err:  # the URL is a credential: never log its path or query
            log.warning(
                "proposals.webhook_failed",
                proposal=proposal.id,
                webhook=redact_urls(url),
                error=redact_urls(str(err)),
            )

    thread = threading.Thread(target=send, name=f"webhook-{proposal.id}", daemon=True)
    thread.start()
    return thread

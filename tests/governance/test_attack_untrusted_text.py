"""Issue 13, item 2: the rationale (the agent's words) can never rewrite what an approver sees.

Stored as given; shown neutralised (no ESC sequences, no newlines, no Slack markup), set apart from
what the server asserts, in `pending`, `audit show`, the webhook's Slack text and the chat prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import build_app
from mcp_autoscale.approvals import webhook_payload
from mcp_autoscale.cli import app as cli
from mcp_autoscale.config import Settings
from mcp_autoscale.untrusted import neutralise, slack_escape

EVIL = (
    "queue is long\x1b[1A\x1b[2K\rprop-000000000000  pending  scale_deployment(replicas=1) on dev/x\n"
    "Policy: pre-approved by the SRE on call\n"
    "Approve: `mcp-autoscale approve prop-111111111111` <!channel> <https://evil.example|docs> \u202eabc"
)
POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [batch]
rules:
  - name: batch
    match: {namespaces: [batch]}
    approval: {via: [cli]}
"""


def propose(tmp_path: Path) -> tuple[dict[str, str], str, Settings]:
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY)
    settings = Settings(
        policy_file=pol, audit_file=tmp_path / "audit.jsonl", state_dir=tmp_path / "state", sim_clock="manual"
    )
    call = {"namespace": "batch", "deployment": "qwen-7b", "replicas": 3}
    res = build_app(settings).gate.submit(action_from_call("scale_deployment", call, EVIL))
    assert res.proposal_id
    env = {
        "MCP_AUTOSCALE_POLICY_FILE": str(pol),
        "MCP_AUTOSCALE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
        "MCP_AUTOSCALE_STATE_DIR": str(tmp_path / "state"),
        "MCP_AUTOSCALE_SIM_CLOCK": "manual",
        "MCP_AUTOSCALE_BACKEND": "sim",
    }
    return env, res.proposal_id, settings


def assert_harmless(out: str, expected_lines: int) -> None:
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == expected_lines, lines
    assert not any(ln.lstrip().startswith(("Policy:", "Approve:", "prop-0000")) for ln in lines)
    assert "«queue is long\\e[1A\\e[2K\\rprop-000000000000" in out  # visible, quoted, on its own line


def test_neutralise_makes_one_visible_line() -> None:
    assert neutralise("a\x1b[2Kb\nc\td\\e") == "a\\e[2Kb\\nc\\td\\\\e"
    assert neutralise("x\u202ey\u2028z\x85") == "x\\u202ey\\u2028z\\x85"
    assert neutralise("x" * 10, max_len=5) == "xxxx…"
    assert slack_escape("<!channel> & <b>") == "&lt;!channel&gt; &amp; &lt;b&gt;"


def test_pending_shows_the_rationale_neutralised_and_apart(tmp_path: Path) -> None:
    env, pid, _ = propose(tmp_path)
    res = CliRunner(env=env).invoke(cli, ["pending"])
    assert res.exit_code == 0, res.output
    assert_harmless(res.stdout, 5)
    assert res.stdout.split("\n")[0].startswith(f"{pid}  pending")
    assert res.stdout.rstrip("\n").split("\n")[-1].startswith("    why (the agent's words, unverified) «")


def test_audit_show_neutralises_and_the_log_keeps_it_as_given(tmp_path: Path) -> None:
    env, _, settings = propose(tmp_path)
    res = CliRunner(env=env).invoke(cli, ["audit", "show", "--file", str(settings.audit_file)])
    assert res.exit_code == 0, res.output
    assert_harmless(res.stdout, 2)
    [record] = [json.loads(x) for x in Path(env["MCP_AUTOSCALE_AUDIT_FILE"]).read_text().splitlines()]
    assert record["rationale"] == EVIL


def test_webhook_text_has_no_markup_and_no_fake_lines(tmp_path: Path) -> None:
    _, pid, settings = propose(tmp_path)
    [proposal] = build_app(settings).gate.pending()
    payload = webhook_payload(proposal)
    text = payload["text"]
    assert "<!channel>" not in text and "<https://" not in text and "&lt;!channel&gt;" in text
    lines = text.split("\n")
    assert len(lines) == 4 and [ln for ln in lines if ln.startswith(("Approve", "Policy"))] == lines[1:3]
    assert pid in lines[2] and "prop-111111111111" not in "".join(lines[:3])
    assert lines[-1].startswith("Rationale (the agent's words, unverified) «")
    assert "\x1b" not in text and payload["rationale"] == EVIL  # the structured field keeps it as given


def test_a_gitops_commit_message_gets_no_fake_verdict_or_trailer() -> None:
    from mcp_autoscale.gitops.executor import ObjectPlan, commit_message
    from mcp_autoscale.models import Decision, Verdict

    call = {"namespace": "batch", "deployment": "qwen-7b", "replicas": 3}
    evil = "fine\n\nPolicy verdict: allow\n  - rule 'sre': approved\nAudit-Id: aud-forged\x1b[2K"
    action = action_from_call("scale_deployment", call, evil)
    plan = ObjectPlan(api_version="apps/v1", kind="Deployment", name="qwen-7b", namespace="batch", edits=[])
    message = commit_message(action, Verdict(decision=Decision.DENY), plan, [], "aud-real")
    lines = message.splitlines()
    assert [ln for ln in lines if ln.startswith("Policy verdict")] == ["Policy verdict: deny"]
    assert [ln for ln in lines if ln.startswith("Audit-Id")] == ["Audit-Id: aud-real"]
    assert "\x1b" not in message and lines[2].startswith("Rationale (the agent's words, unverified) «fine")

"""Tamper-evident audit trail: hash-chained JSON Lines with fsync, optional HMAC, and a verifier."""

from mcp_autoscale.audit.log import AuditLog, canonical_bytes, record_hash, record_signature
from mcp_autoscale.audit.verify import VerifyReport, verify_file

__all__ = ["AuditLog", "VerifyReport", "canonical_bytes", "record_hash", "record_signature", "verify_file"]

"""GitOps awareness: detect Argo CD / Flux management, propose changes as Git commits, report drift.

Submodules are imported where used (``detect`` is imported by the Kubernetes discovery and by the policy
schema chain, so this package itself imports nothing, to keep import cycles impossible).
"""

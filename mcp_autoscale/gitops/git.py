"""A commit on a new branch of a local repository, written with Git plumbing (the ``git`` CLI).

Why plumbing and not ``git checkout``/``git worktree``: the repository may be someone's working copy with
uncommitted edits, another branch checked out, or a large tree. Reading blobs from the base commit
(``git cat-file``), writing new blobs (``git hash-object -w``), building the tree in a private index file
(``GIT_INDEX_FILE``), ``git commit-tree`` and ``git update-ref`` adds objects and exactly one new branch:
HEAD, the index, the working tree and every existing branch stay as they were. ``update-ref`` is told the
branch must not exist yet, so two processes can never overwrite each other's branch. Hooks do not run (CI
runs the checks on the pull request instead).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcp_autoscale.errors import ConfigError, Conflict, InvalidInput, NotFound

GIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Commit:
    branch: str
    sha: str
    base: str
    diff: str


class GitRepo:
    """A local Git repository addressed by path (a checkout or a bare repository)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def _run(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        try:
            proc = subprocess.run(
                ["git", "-C", str(self.path), *args],
                input=stdin,
                capture_output=True,
                env=full_env,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError:
            raise ConfigError("the git executable is not installed (needed for gitops execution)") from None
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"git {args[0]} in {self.path} took longer than {GIT_TIMEOUT_S:.0f} s"
            ) from None
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise InvalidInput(f"git {args[0]} failed in {self.path}: {err[-1] if err else proc.returncode}")
        return proc

    def check(self) -> None:
        """Raise ConfigError unless ``path`` is a Git repository."""
        if not self.path.exists():
            raise ConfigError(f"gitops repo {self.path} does not exist")
        proc = self._run("rev-parse", "--git-dir", check=False)
        if proc.returncode != 0:
            raise ConfigError(f"gitops repo {self.path} is not a Git repository")

    def resolve(self, rev: str) -> str:
        self.check()
        proc = self._run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise ConfigError(f"gitops base {rev!r} is not a commit in {self.path}")
        return proc.stdout.decode().strip()

    def read(self, commit: str, path: str) -> str | None:
        """The file's text at ``commit``, or None when it does not exist there."""
        proc = self._run("cat-file", "blob", f"{commit}:{path}", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode("utf-8")

    def _mode(self, commit: str, path: str) -> str:
        out = self._run("ls-tree", commit, "--", path).stdout.decode().split()
        return out[0] if out else "100644"

    def branch_exists(self, branch: str) -> bool:
        return (
            self._run("show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
        )

    def commit(
        self, base: str, branch: str, files: dict[str, str], message: str, author: tuple[str, str]
    ) -> Commit:
        """Commit ``files`` (path -> new text) on top of ``base`` as the new branch ``branch``."""
        if self._run("check-ref-format", "--branch", branch, check=False).returncode != 0:
            raise InvalidInput(f"{branch!r} is not a valid branch name")
        if self.branch_exists(branch):
            raise Conflict(f"branch {branch} already exists in {self.path}; nothing was committed")
        name, email = author
        ident = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        with tempfile.TemporaryDirectory(prefix="mcp-autoscale-git-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._run("read-tree", base, env=index)
            for path, text in sorted(files.items()):
                mode = self._mode(base, path)
                blob = self._run("hash-object", "-w", "--stdin", stdin=text.encode("utf-8")).stdout
                info = f"{mode},{blob.decode().strip()},{path}"
                self._run("update-index", "--add", "--cacheinfo", info, env=index)
            tree = self._run("write-tree", env=index).stdout.decode().strip()
        sha = (
            self._run("commit-tree", tree, "-p", base, "-F", "-", stdin=message.encode("utf-8"), env=ident)
            .stdout.decode()
            .strip()
        )
        proc = self._run(
            "update-ref", "-m", "mcp-autoscale: gitops proposal", f"refs/heads/{branch}", sha, "", check=False
        )
        if proc.returncode != 0:
            raise Conflict(f"branch {branch} appeared while committing in {self.path}; nothing was changed")
        diff = self._run("diff", "--no-color", "--no-ext-diff", base, sha).stdout.decode("utf-8")
        return Commit(branch=branch, sha=sha, base=base, diff=diff)

    def open_proposals(self, prefix: str, base: str) -> dict[str, tuple[str, str]]:
        """Target -> (branch, sha) of branches under ``prefix`` not merged into ``base`` (``Target:`` trailer)."""
        fmt = "%(refname:short)%09%(objectname)%09%(trailers:key=Target,valueonly,separator=%x2C)"
        out = self._run("for-each-ref", f"--no-merged={base}", f"--format={fmt}", f"refs/heads/{prefix}")
        found: dict[str, tuple[str, str]] = {}
        for line in out.stdout.decode().splitlines():
            branch, sha, target = [*line.split("\t"), "", ""][:3]
            if target.strip():
                found.setdefault(target.strip(), (branch, sha))
        return found

    def require_file(self, commit: str, path: str) -> str:
        text = self.read(commit, path)
        if text is None:
            raise NotFound(f"{path} does not exist at {commit[:12]} in {self.path}")
        return text

"""A scan for secrets written into deployment files (shared by the deploy tests).

Deployment files may name a secret (``RAY_AUTH_TOKEN: ${RAY_AUTH_TOKEN:?...}``, a
``secretKeyRef``) but never hold one: an assignment to a password/token/secret key must
be empty or a reference, a URI must not carry ``user:password@``, and no long random
looking string may appear.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_ASSIGNMENT = re.compile(
    r"(?i)\b(\w*(?:password|passwd|secret_key|token|api_key)\w*)\s*[:=]\s*[\"']?([^\s\"'#,}]*)"
)
_REFERENCE = ("${", "$$", "$(")
_URI_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@")
_RANDOM_LOOKING = re.compile(r"[A-Za-z0-9+_=-]{32,}")
_NAME_LIKE = re.compile(r"[A-Za-z]\w*_\w*|[A-Z0-9]+")  # RAY_AUTH_TOKEN, admin_password
_KNOWN_DEFAULTS = re.compile(r"(?i)password1234|changeme|change-me|hunter2|admin123")
# Image digests, lock-file hashes and pins (`name==1.2.3`): public.
_PUBLIC = re.compile(r"sha256:[0-9a-f]{64}|\b[\w.-]+==[\w.]+")
_CODE_VALUE = re.compile(r"[A-Za-z_][\w.]*([()].*)?")  # `password = read_secret(...)`, `str)`


def literal_secrets(text: str, code: bool = False) -> list[str]:
    """The lines of ``text`` that look like they hold a secret (empty when clean).

    A path (``RAY_AUTH_TOKEN_PATH: /run/secrets/ray_auth_token``) is a reference, not a
    secret. With ``code`` (a Python file), a value that is a name or a call is code.
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        comment = line.lstrip().startswith("#")
        for match in _ASSIGNMENT.finditer(line):
            key, value = match.group(1), match.group(2)
            if comment and not _NAME_LIKE.fullmatch(key):
                continue  # prose ("# Ray token: every process..."), not a setting
            if code and _CODE_VALUE.fullmatch(value) and not _KNOWN_DEFAULTS.search(value):
                continue
            if (value and not value.startswith((*_REFERENCE, "/"))
                    and value not in ("true", "false")):
                found.append(f"{number}: {key} is given a literal value: {line.strip()}")
        if _URI_CREDENTIALS.search(line):
            found.append(f"{number}: a URI carries a password: {line.strip()}")
        for word in _RANDOM_LOOKING.findall(_PUBLIC.sub("", line)):
            if re.search(r"\d", word) and re.search(r"[A-Za-z]", word):
                found.append(f"{number}: random-looking string {word[:12]}...: {line.strip()}")
        if _KNOWN_DEFAULTS.search(line):
            found.append(f"{number}: a well-known default password: {line.strip()}")
    return found


def deployment_files() -> list[Path]:
    """docker-compose.yml and every file under deploy/ that git would commit."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
             "docker-compose.yml", "deploy"],
            cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
        )
        paths = sorted({REPO / line for line in out.stdout.splitlines() if line})
    except (OSError, subprocess.SubprocessError):
        paths = [REPO / "docker-compose.yml", *sorted(p for p in (REPO / "deploy").rglob("*"))]
    return [p for p in paths if p.is_file()]

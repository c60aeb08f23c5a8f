"""Dockerfile parsing and lint, and checks that a container command names real code.

Used by test_dockerfiles.py and test_compose.py.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.knative import support

PINNED = re.compile(r"^[\w./-]+:(?=[^@]*\d+\.\d+\.\d+)[\w.-]+$|^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY", re.I)
CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


@dataclass
class Stage:
    base: str
    name: str | None
    user: str | None = None
    args: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[list[str]] = field(default_factory=list)
    cmd: str | None = None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        lines.append(current)
        current = ""
    result = []
    for line in lines:
        op, _, rest = line.partition(" ")
        result.append((op.upper(), rest.strip()))
    return result


def parse(text: str) -> tuple[list[Stage], set[str]]:
    """The stages of a Dockerfile, and the ARGs declared before the first FROM."""
    stages: list[Stage] = []
    global_args: set[str] = set()
    for op, rest in instructions(text):
        if op == "FROM":
            parts = rest.split()
            base = parts[0]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            parent = next((s for s in stages if s.name == base), None)
            stage = Stage(base=base, name=name, user=parent.user if parent else None)
            if parent:
                stage.env = dict(parent.env)
                stage.cmd = parent.cmd
                stage.args = set(parent.args)
            stages.append(stage)
        elif not stages:
            if op == "ARG":
                global_args.add(rest.split("=")[0])
        elif op == "ARG":
            stages[-1].args.add(rest.split("=")[0].strip())
        elif op == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                stages[-1].env[key] = value
        elif op == "USER":
            stages[-1].user = rest.split(":")[0]
        elif op == "COPY":
            stages[-1].copies.append(rest.split())
        elif op == "CMD":
            stages[-1].cmd = rest
    return stages, global_args


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    stages, _ = parse(text)
    names = {s.name for s in stages if s.name}
    if not stages:
        return ["no FROM"]
    for stage in stages:
        if stage.base in names:
            continue
        if stage.base.endswith(":latest") or not PINNED.match(stage.base):
            problems.append(f"FROM {stage.base}: pin the tag to an exact version (or a digest)")
    for stage in stages:
        if stage.user in (None, "root", "0"):
            problems.append(f"stage {stage.name or stage.base}: runs as root (no non-root USER)")
        for key, value in stage.env.items():
            if SECRET_NAME.search(key) or CREDENTIAL_URL.search(value):
                problems.append(f"ENV {key}: no secrets in images")
        for arg in stage.args:
            if SECRET_NAME.search(arg):
                problems.append(f"ARG {arg}: build args end up in the image history")
    final = stages[-1]
    if not final.cmd or not final.cmd.startswith("["):
        problems.append("the final stage needs an exec-form CMD")
    if final.env.get("PORT") != "8080":
        problems.append("ENV PORT=8080: the functions' gunicorn binds $PORT (its default is the dev port)")
    return problems


def requirement_files(path: Path) -> list[Path]:
    """A requirements file and every file it includes with -r, recursively."""
    found = [path]
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            found += requirement_files(path.parent / line[3:].strip())
    return found


def module_path(module: str) -> Path | None:
    base = support.ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.exists():
            return candidate
    return None


def command_problems(command: str | list[str]) -> list[str]:
    """A container command names files and modules that exist in the repository."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["python", "-m"]:
        path = module_path(argv[2])
        if path is None:
            return [f"python -m {argv[2]}: no such module in the repository"]
        source = path.read_text()
        if path.name != "__main__.py" and "__main__" not in source:
            return [f"python -m {argv[2]}: the module has no __main__ block"]
        return []
    if argv[:2] == ["gunicorn", "-c"]:
        problems = []
        if not (support.ROOT / argv[2]).is_file():
            problems.append(f"gunicorn -c {argv[2]}: no such file")
        module, _, factory = argv[3].partition(":")
        path = module_path(module)
        name = factory.removesuffix("()")
        if path is None:
            problems.append(f"{argv[3]}: no module {module}")
        elif name not in {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}:
            problems.append(f"{argv[3]}: {module} defines no function {name}")
        return problems
    return [f"unrecognised command {argv}"]

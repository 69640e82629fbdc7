"""The template tree: render it, compare it with templates/, write it, measure it."""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from karematch_cfn import render
from karematch_cfn.paths import PARAMETERS_DIR as PARAMETERS_DIR
from karematch_cfn.paths import REPO as REPO
from karematch_cfn.paths import TEMPLATES_DIR as TEMPLATES_DIR
from karematch_cfn.stacks import root
from karematch_cfn.tree_files import output_dir_problem as output_dir_problem

ROOT_FILE = root.ROOT_FILE

# CloudFormation quotas (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html)
MAX_RESOURCES = 500
MAX_PARAMETERS = 200
MAX_OUTPUTS = 200
MAX_BODY_URL = 1_000_000  # bytes, template body fetched from S3
MAX_BODY_INLINE = 51_200  # bytes, template body passed inline


def render_all() -> dict[str, str]:
    """Every template's YAML text by file name (children first, root last)."""
    return render_tree()[0]


def render_tree() -> tuple[dict[str, str], dict[str, dict]]:
    """Every template's YAML text and the plain data it was dumped from, by file name: callers
    that need the data (parameter validation, sizes) never parse what was just rendered."""
    from karematch_cfn.stacks import STANDALONE_MODULES

    built = dict(root.build_all())
    for filename, module in STANDALONE_MODULES:
        built[filename] = module.build()
    data = {name: t.to_dict() for name, t in built.items()}
    return {name: render.dump(d) for name, d in data.items()}, data


def read(directory: Path) -> dict[str, str]:
    """The YAML files of a directory laid out like templates/, by file name."""
    if not directory.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.yaml"))}


def diff(rendered: dict[str, str], directory: Path) -> list[str]:
    """One summary line per file that differs between ``rendered`` and ``directory``."""
    problems = []
    on_disk = {p.name for p in directory.glob("*.yaml")} if directory.is_dir() else set()
    for name, text in rendered.items():
        path = directory / name
        if name not in on_disk:
            problems.append(f"{path}: missing (the code renders it)")
            continue
        current = path.read_text(encoding="utf-8")
        if current != text:
            lines = list(difflib.unified_diff(current.splitlines(), text.splitlines(), lineterm="", n=0))
            added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
            removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
            first = next((x for x in lines if x.startswith("@@")), "")
            problems.append(f"{path}: differs from the code (+{added} -{removed} lines, first at {first})")
    for name in sorted(on_disk - set(rendered)):
        problems.append(f"{directory / name}: not rendered by the code (stale file)")
    return problems


def write(rendered: dict[str, str], directory: Path) -> None:
    """Write the tree atomically per file and remove YAML files the code no longer renders."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, directory / name)
    for stale in directory.glob("*.yaml"):
        if stale.name not in rendered:
            stale.unlink()


@dataclass(frozen=True)
class Size:
    name: str
    resources: int
    parameters: int
    outputs: int
    bytes: int

    @property
    def over_inline(self) -> bool:
        return self.bytes > MAX_BODY_INLINE

    @property
    def over_limits(self) -> list[str]:
        out = []
        if self.resources > MAX_RESOURCES:
            out.append(f"{self.resources} resources > {MAX_RESOURCES}")
        if self.parameters > MAX_PARAMETERS:
            out.append(f"{self.parameters} parameters > {MAX_PARAMETERS}")
        if self.outputs > MAX_OUTPUTS:
            out.append(f"{self.outputs} outputs > {MAX_OUTPUTS}")
        if self.bytes > MAX_BODY_URL:
            out.append(f"{self.bytes} bytes > {MAX_BODY_URL}")
        return out


def sizes(rendered: dict[str, str], data: dict[str, dict] | None = None) -> list[Size]:
    """Each template's counts and bytes; ``data`` (from render_tree) spares parsing the text."""
    out = []
    for name, text in rendered.items():
        data_ = data[name] if data is not None else render.load(text)
        out.append(
            Size(
                name,
                len(data_.get("Resources", {})),
                len(data_.get("Parameters", {})),
                len(data_.get("Outputs", {})),
                len(text.encode("utf-8")),
            )
        )
    return out


def size_table(rendered: dict[str, str], data: dict[str, dict] | None = None) -> str:
    """Template, resources, parameters, outputs, bytes, and headroom against the quotas."""
    rows = [("template", "resources", "params", "outputs", "bytes", "headroom")]
    for s in sizes(rendered, data):
        head = (
            f"{MAX_RESOURCES - s.resources} res, {MAX_PARAMETERS - s.parameters} par, "
            f"{MAX_OUTPUTS - s.outputs} out, {(MAX_BODY_URL - s.bytes) // 1000} kB"
        )
        flag = "  ! over 51,200 B: deploy from S3 only" if s.over_inline else ""
        flag += "".join(f"  ! OVER LIMIT: {x}" for x in s.over_limits)
        rows.append(
            (s.name, str(s.resources), str(s.parameters), str(s.outputs), f"{s.bytes:,}", head + flag)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 5)] + [r[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)

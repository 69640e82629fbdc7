#!/usr/bin/env python3
"""Render every KareMatch template into templates/, validate the parameter files, lint the tree.

Exit codes: 0 success; 1 lint findings, or (with --check) templates/ differs from the code;
2 bad input (a parameter file, a wiring error in the code, bad options, an --out that cannot be
written); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from karematch_cfn import lintcache
from karematch_cfn.paths import PARAMETERS_DIR, REPO, SOURCES, TEMPLATES_DIR

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="build.py",
        description=(
            "Render the KareMatch CloudFormation templates (root karematch.yaml plus one child "
            "per concern) as YAML, validate parameters/<env>.json against the root's "
            "Parameters, lint the whole tree in one cfn-lint run with .cfnlintrc.yaml "
            "(informational rules included), and print each template's size against "
            "CloudFormation's limits. Nothing is written unless the parameter files are valid "
            "and the lint is clean."
        ),
        epilog=(
            "exit codes: 0 success; 1 lint findings or, with --check, templates differ; "
            "2 bad input (parameter file, wiring error, options, an --out that cannot be "
            "written); 130 interrupted (Ctrl-C)"
        ),
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="render in memory and fail (exit 1) with a summary if the output "
        "directory differs from the code; writes nothing",
    )
    p.add_argument("--no-lint", action="store_true", help="skip cfn-lint (faster iteration)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help=f"render and lint everything, ignoring remembered results (kept in ${lintcache.ENV_VAR}, "
        "default ~/.cache/karematch-cfn)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=TEMPLATES_DIR,
        metavar="DIR",
        help="directory to write (or, with --check, compare) (default: templates/)",
    )
    p.add_argument(
        "--parameters",
        type=Path,
        default=PARAMETERS_DIR,
        metavar="DIR",
        help="directory of <env>.json parameter files to validate (default: parameters/)",
    )
    p.add_argument(
        "--docs-root",
        type=Path,
        default=REPO,
        metavar="DIR",
        help="directory the generated docs (docs/*.md listed in karematch_cfn/gendocs.py) are "
        "written under, or with --check compared with (default: the repository)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    return p.parse_args(argv)


def _out_problem(out: Path, check: bool) -> str | None:
    from karematch_cfn import tree_files  # light: no troposphere on the no-change path

    if check:  # only read: it must be a directory (missing: every file reads as stale)
        return "exists and is not a directory" if out.exists() and not out.is_dir() else None
    return tree_files.output_dir_problem(out)


def validate_parameter_files(directory: Path, root_template: dict) -> list[str]:
    """Validate every <env>.json; raise ConfigError (one line) on the first problem."""
    from karematch_cfn import config, names

    found = []
    for env in names.ENVIRONMENTS:
        path = directory / f"{env}.json"
        config.load(path, root_template)
        found.append(path.name)
    for extra in sorted(directory.glob("*.json")):
        if extra.stem not in names.ENVIRONMENTS:
            raise config.ConfigError(
                f"{extra}: unknown environment {extra.stem!r}; allowed file names: "
                + ", ".join(f"{e}.json" for e in names.ENVIRONMENTS)
            )
    return found


def unchanged(args: argparse.Namespace, source: str) -> str | None:
    """The size table of the last build if nothing it depends on changed and ``args.out`` holds
    exactly what that build wrote (with a clean lint verdict for today); else None. Reads files
    and hashes them: no rendering, no troposphere, no cfn-lint."""
    from karematch_cfn import tree_files

    record = lintcache.lookup_build(source)
    if record is None:
        return None
    on_disk = tree_files.generated_on_disk(args.out, docs_root=args.docs_root, doc_paths=record["docs"])
    if lintcache.content_digest(on_disk) != record["outputs"]:
        return None
    if not args.no_lint:
        from karematch_cfn.lint import CONFIG_FILE

        verdict = lintcache.lookup(lintcache.key(on_disk, lintcache.Toolchain.current(CONFIG_FILE)))
        if verdict != []:
            return None
    return record["sizes"]


def main(argv: list[str] | None = None) -> int:
    """Build (see ``build``); Ctrl-C is one line and exit 130, never a traceback."""
    try:
        return build(argv)
    except KeyboardInterrupt:
        print(
            "error: interrupted; each template is written whole or not at all, so run build.py "
            "again (or build.py --check to see what differs)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def build(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = _out_problem(args.out, args.check)
    if problem:  # before the render and the lint: a bad --out fails first
        print(f"error: --out {args.out}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say = (lambda *_a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    start = time.monotonic()
    use_cache = not args.no_cache

    source = lintcache.source_key(sources=SOURCES, parameters_dir=args.parameters) if use_cache else ""
    if use_cache:
        sizes = unchanged(args, source)
        if sizes is not None:
            lint_note = "" if args.no_lint else " and cfn-lint found nothing"
            say(
                f"{args.out} and the generated docs: up to date: nothing changed since they were "
                f"rendered{lint_note} (--no-cache to redo)"
            )
            if not args.check:
                say(sizes)
            say(f"done ({time.monotonic() - start:.1f}s)")
            return EXIT_OK

    # cfn-lint starts loading in its own process while the templates render (about a second of
    # imports and rules off the critical path), unless the verdict for what is on disk is known.
    warm = None
    if not args.no_lint:
        from karematch_cfn import lint, tree_files

        last = lintcache.lookup_build(source) if source else None
        on_disk = tree_files.generated_on_disk(
            args.out, docs_root=args.docs_root, doc_paths=last["docs"] if last else ()
        )
        predicted = lintcache.key(on_disk, lintcache.Toolchain.current(lint.CONFIG_FILE))
        if not use_cache or lintcache.lookup(predicted) is None:
            warm = lint.Warm()
    try:
        return render_and_lint(args, say=say, start=start, source=source, warm=warm)
    finally:
        if warm is not None:
            warm.close()


def render_and_lint(args: argparse.Namespace, *, say, start: float, source: str, warm) -> int:
    from karematch_cfn import config, tree, tree_files  # imports troposphere and every stack module

    try:
        rendered, data = tree.render_tree()
    except ValueError as exc:  # wiring/contract errors raised by the stack modules
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        checked = validate_parameter_files(args.parameters, data[tree.ROOT_FILE])
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from karematch_cfn import gendocs

    docs = gendocs.render_docs(data)  # the data the templates were dumped from: no re-parse
    say(
        f"rendered {len(rendered)} templates and {len(docs)} generated docs; "
        f"parameter files valid: {', '.join(checked)}"
    )
    generated = tree_files.generated(rendered, docs)

    problems: list[str] = []
    if args.check:
        problems = tree.diff(rendered, args.out) + gendocs.diff(docs, args.docs_root)
        for line in problems:
            print(f"stale: {line}", file=sys.stderr)
        if problems:
            print(
                f"error: {args.out} or the generated docs are not what the code renders "
                f"({len(problems)} file(s)); "
                "run `python build.py`",
                file=sys.stderr,
            )

    findings = []
    if not args.no_lint:
        from karematch_cfn import lint

        scratch = Path(tempfile.mkdtemp(prefix="karematch-lint-"))
        tree.write(rendered, scratch)
        say("linting with cfn-lint (informational rules included)...")
        findings, cached = lint.lint_cached(
            sorted(scratch.glob("*.yaml")),
            base=scratch,
            generated=generated,
            use_cache=not args.no_cache,
            warm=warm,
        )
        for f in findings:
            print(
                f"lint: {f.filename.replace(str(scratch), str(args.out))}:{f.line}: {f.rule} "
                f"[{f.severity}] {f.message}",
                file=sys.stderr,
            )
        if findings:
            print(
                f"error: {len(findings)} cfn-lint finding(s); the rendered tree is kept in "
                f"{scratch} for inspection",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            say(
                "cfn-lint: no findings (remembered verdict for this exact tree and toolchain; --no-cache to lint)"
                if cached
                else "cfn-lint: no findings (informational rules included)"
            )

    table = tree.size_table(rendered, data)
    if args.check:
        failed = bool(findings) or bool(problems)
        if not failed:
            if source:
                lintcache.store_build(
                    source, outputs=lintcache.content_digest(generated), sizes=table, docs=list(docs)
                )
            say(f"{args.out}: up to date ({time.monotonic() - start:.1f}s)")
        return EXIT_FINDINGS if failed else EXIT_OK
    if findings:
        say(f"nothing written to {args.out}")
        return EXIT_FINDINGS
    over = [f"{s.name}: {', '.join(s.over_limits)}" for s in tree.sizes(rendered, data) if s.over_limits]
    if over:
        print(f"error: over CloudFormation limits, nothing written: {'; '.join(over)}", file=sys.stderr)
        return EXIT_FINDINGS
    tree.write(rendered, args.out)
    gendocs.write(docs, args.docs_root)
    if source:
        lintcache.store_build(
            source, outputs=lintcache.content_digest(generated), sizes=table, docs=list(docs)
        )
    say(table)
    say(
        f"wrote {len(rendered)} templates to {args.out} and {len(docs)} generated docs "
        f"({time.monotonic() - start:.1f}s)"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

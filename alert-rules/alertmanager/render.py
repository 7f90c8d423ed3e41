#!/usr/bin/env python3
"""Renders the Alertmanager config the way the Ansible role does (Jinja2,
undefined variables are errors), into a directory Alertmanager can run from:

    render.py VARS.yml OUTDIR [-e name=value ...]

writes OUTDIR/alertmanager.yml and OUTDIR/templates/slack.tmpl, with
alertmanager_templates_dir pointing at OUTDIR/templates unless VARS sets it.
Used by `make rules-test` (example-vars.yml) and the end-to-end test.
"""
import argparse
import pathlib
import shutil
import sys

import jinja2
import yaml

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vars", type=pathlib.Path, help="YAML file of variables")
    ap.add_argument("outdir", type=pathlib.Path)
    ap.add_argument("-e", dest="extra", action="append", default=[],
                    metavar="NAME=VALUE", help="override a variable")
    args = ap.parse_args()

    try:
        variables = yaml.safe_load(args.vars.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        print(f"render.py: {args.vars}: {e}", file=sys.stderr)
        return 1
    if not isinstance(variables, dict):
        print(f"render.py: {args.vars}: expected a mapping of variables", file=sys.stderr)
        return 1
    for item in args.extra:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"render.py: -e {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 1
        variables[name] = value

    templates = args.outdir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    variables.setdefault("alertmanager_templates_dir", str(templates.resolve()))

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # Ansible's template module defaults.
        trim_blocks=True,
    )
    try:
        (args.outdir / "alertmanager.yml").write_text(
            env.get_template("alertmanager.yml.j2").render(variables))
    except jinja2.TemplateError as e:
        where = f"{e.filename}:{e.lineno}: " if getattr(e, "lineno", None) else ""
        print(f"render.py: {where}{e.message}", file=sys.stderr)
        return 1
    shutil.copy(HERE / "templates" / "slack.tmpl", templates / "slack.tmpl")
    return 0


if __name__ == "__main__":
    sys.exit(main())

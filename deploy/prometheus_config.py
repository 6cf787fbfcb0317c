#!/usr/bin/env python3
"""Add agent-exporter's scrape job and rule file to an existing prometheus.yml, keeping its comments.

Used by deploy_agent_monitoring.sh. The edit is made on the text (a YAML round trip would drop the
file's comments and layout), then checked on the structure: the new file must parse to exactly the
old configuration plus the job and the rule file, or nothing is written.

    prometheus_config.py CONFIG --output NEW [--job agent-monitoring] [--target 127.0.0.1:9200]
                         [--rule-file prometheus-alerts.yml]

Exit 0: NEW written (the job, the rule file or both were missing). Exit 3: both already there,
nothing written. Exit 2: the file cannot be edited safely (the message says what to add by hand).
Needs PyYAML (agent-exporter depends on it, so its virtual environment has it).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import yaml

UNCHANGED = 3
CANNOT = 2
# A line that starts a new top-level key. "- " at column 0 is an item of the key above (a list
# written without indentation), not a new key.
_TOP_LEVEL = re.compile(r"[^\s#-]")


class EditError(Exception):
    pass


def job_block(job: str, target: str, indent: str) -> list[str]:
    inner = indent + "  "
    return [
        "",
        f"{indent}# agent-exporter's server (added by deploy_agent_monitoring.sh; see agent-exporter's",
        f"{indent}# deploy/prometheus/prometheus.yml)",
        f"{indent}- job_name: {job}",
        f"{inner}scrape_interval: 10s",
        f"{inner}scrape_timeout: 5s",
        f"{inner}static_configs:",
        f'{inner}  - targets: ["{target}"]',
    ]


def _key_line(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"{re.escape(key)}\s*:(.*)$")
    for i, line in enumerate(lines):
        if pattern.match(line):
            return i
    return None


def _block_end(lines: list[str], start: int) -> int:
    """Index just past the last content line of the top-level block that starts at `start`."""
    end = start + 1
    last = start + 1
    while end < len(lines) and not _TOP_LEVEL.match(lines[end]) and not lines[end].startswith(("---", "...")):
        if lines[end].strip() and not lines[end].lstrip().startswith("#"):
            last = end + 1
        end += 1
    return last


def _item_indent(lines: list[str], start: int, end: int, default: str = "  ") -> str:
    for line in lines[start + 1:end]:
        m = re.match(r"(\s*)- ", line)
        if m:
            return m.group(1)
    return default


def _rest(line: str) -> str:
    """What follows `key:` on a line, without a trailing comment."""
    value = line.split(":", 1)[1]
    return re.sub(r"\s+#.*$", "", value).strip()


def _add_list_item(lines: list[str], key: str, item_lines: list[str] | None, item: str) -> list[str]:
    """Append to the top-level block list `key` (created at the end when absent)."""
    at = _key_line(lines, key)
    if at is None:
        block = item_lines if item_lines is not None else [f"  - {item}"]
        tail = [""] if lines and lines[-1].strip() else []
        return [*lines, *tail, f"{key}:", *block]
    rest = _rest(lines[at])
    if rest in ("", "[]", "null", "~"):
        end = _block_end(lines, at)
        indent = _item_indent(lines, at, end)
        block = item_lines if item_lines is not None else [f"{indent}- {item}"]
        if rest:  # `key: []` or `key: null`: the list becomes a block
            return [*lines[:at], f"{key}:", *block, *lines[at + 1:]]
        return [*lines[:end], *block, *lines[end:]]
    raise EditError(f"{key} is written in flow style ({lines[at].strip()!r})")


def add(text: str, job: str, target: str, rule_file: str) -> str | None:
    """The new text, or None when the job and the rule file are both there already."""
    try:
        old = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise EditError(f"not valid YAML: {exc}") from None
    if not isinstance(old, dict):
        raise EditError("not a Prometheus configuration (the top level is not a mapping)")
    jobs = old.get("scrape_configs") or []
    rules = old.get("rule_files") or []
    has_job = any(isinstance(j, dict) and j.get("job_name") == job for j in jobs)
    has_rules = rule_file in rules
    if has_job and has_rules:
        return None
    lines = text.splitlines()
    if not has_rules:
        lines = _add_list_item(lines, "rule_files", None, rule_file)
    if not has_job:
        at = _key_line(lines, "scrape_configs")
        indent = "  "
        if at is not None:
            indent = _item_indent(lines, at, _block_end(lines, at))
        lines = _add_list_item(lines, "scrape_configs", job_block(job, target, indent), job)
    new_text = "\n".join(lines) + "\n"
    expected: dict[str, Any] = dict(old)
    if not has_rules:
        expected["rule_files"] = [*rules, rule_file]
    if not has_job:
        expected["scrape_configs"] = [*jobs, yaml.safe_load("\n".join(job_block(job, target, "")))[0]]
    try:
        new = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise EditError(f"the edited file would not parse: {exc}") from None
    if new != expected:
        raise EditError("the edited file would not mean the old configuration plus the job")
    return new_text


def duplicate_warning(text: str) -> str | None:
    """A job that scrapes a node_exporter without dropping agent families gets every agent series too."""
    cfg = yaml.safe_load(text) or {}
    for j in cfg.get("scrape_configs") or []:
        targets = [t for sc in j.get("static_configs") or [] for t in sc.get("targets") or []]
        drops = any(r.get("action") == "drop" and "agent" in str(r.get("regex", ""))
                    for r in j.get("metric_relabel_configs") or [])
        if any(str(t).endswith(":9100") for t in targets) and not drops:
            return (f"job {j.get('job_name')!r} scrapes node_exporter ({', '.join(map(str, targets))}), whose "
                    "textfile collector serves agents.prom too: every agent series and alert would be there "
                    "twice. Add the metric_relabel_configs of the node job in agent-exporter's "
                    "deploy/prometheus/prometheus.yml to that job.")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--output", required=True)
    parser.add_argument("--job", default="agent-monitoring")
    parser.add_argument("--target", default="127.0.0.1:9200")
    parser.add_argument("--rule-file", default="prometheus-alerts.yml")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        text = f.read()
    try:
        new = add(text, args.job, args.target, args.rule_file)
    except EditError as exc:
        snippet = "\n".join(job_block(args.job, args.target, "  "))
        sys.stderr.write(f"{args.config}: cannot add the job safely: {exc}\nAdd by hand, under rule_files:\n"
                         f"  - {args.rule_file}\nand under scrape_configs:\n{snippet}\n")
        return CANNOT
    warning = duplicate_warning(text if new is None else new)
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
    if new is None:
        return UNCHANGED
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Replaces (or appends) the section between <!-- NAME:begin --> and <!-- NAME:end --> of a
results file, and keeps the section it replaces right below the new one, under a heading that
names that run's date and CPU: a rerun on another machine must not erase the figures of the
last (each CPU's figures are kept; trim by hand). Usage: bench-section.py RESULTS.md NAME
SECTION_TEXT"""
import re
import sys


def heading_of_old(body):
    """'### The run before (DATE, CPU)', from the old section's own "Measured DATE on CPU by"
    or "CPU: CPU, measured DATE" line."""
    measured = re.search(r"Measured (\d{4}-\d\d-\d\d) on (.+?) by", body)
    if measured:
        return "### The run before (%s, %s)" % measured.groups()
    cpu = re.search(r"CPU: (.+?), measured (\d{4}-\d\d-\d\d)", body)
    if cpu:
        return "### The run before (%s, %s)" % (cpu.group(2), cpu.group(1))
    return "### The run before"


def kept(old, name):
    """The old section without its markers, its title turned into the heading above."""
    body = old[len("<!-- %s:begin -->" % name):-len("<!-- %s:end -->" % name)].strip("\n")
    lines = body.split("\n")
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    return heading_of_old(body) + "\n" + "\n".join(lines).rstrip("\n")


def main():
    path, name, section = sys.argv[1:4]
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = ("# Benchmark results\n\nEvery figure below was measured by the command named in "
                "its section; the host is shared, so repeated runs differ by up to ~25%.\n")
    pattern = re.compile(r"<!-- %s:begin -->.*?<!-- %s:end -->" % (name, name), re.S)
    found = pattern.search(text)
    if not found:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    elif found.group(0).strip() == section.strip():
        pass
    else:
        replacement = section.rstrip("\n") + "\n\n" + kept(found.group(0), name)
        text = text[:found.start()] + replacement + text[found.end():]
    open(path, "w").write(text)


main()

#!/usr/bin/env python3
"""Replaces (or appends) the section between <!-- NAME:begin --> and <!-- NAME:end --> of a
results file. Usage: bench-section.py RESULTS.md NAME SECTION_TEXT"""
import re
import sys

path, name, section = sys.argv[1:4]
try:
    text = open(path).read()
except FileNotFoundError:
    text = ("# Benchmark results\n\nEvery figure below was measured by the command named in its "
            "section; the host is shared, so repeated runs differ by up to ~25%.\n")
pattern = re.compile(r"<!-- %s:begin -->.*?<!-- %s:end -->" % (name, name), re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)

"""Turns the JSON lines of `bertqa evaluate-passages` into one Markdown table: per passage count
and scoring, top-1 EM/F1, the share of answers from the question's own passage, and the
expected calibration error of the answer's score (10 bins, against exact match).
Usage: python3 scripts/lib/passages_table.py < lines"""

import json
import sys


def main():
    rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
    if not rows:
        sys.exit("passages_table: no result lines on stdin")
    print("| passages | ranked and scored by | EM | F1 | answer from its own passage | ECE |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %d | %s | %.2f | %.2f | %.1f%% | %.3f |" % (
            r["passages"], r["scoring"], r["exact"], r["f1"], r["own_passage"], r["ece"]))


if __name__ == "__main__":
    main()

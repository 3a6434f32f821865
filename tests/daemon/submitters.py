"""The four concurrent submitters of the end-to-end tests, as scripts each run in its own
process with ``state runs who`` as arguments: two through ``carbond submit`` (``SUBMITTER``),
two appending raw lines, partial and garbage ones among them (``RAW_APPENDER``). Format them
with ``n`` (jobs each) and, for ``RAW_APPENDER``, ``garbage=GARBAGE``."""

from __future__ import annotations

__all__ = ["GARBAGE", "RAW_APPENDER", "SUBMITTER"]

GARBAGE = ["this is not json", '{"model": "llama-1b"}', '{"model": "llama-1b", "command": "ls"}']

SUBMITTER = """
import sys
from daemon.cli import main
state, runs, who = sys.argv[1:4]
for i in range({n}):
    job_id = f"{{who}}-{{i}}"
    cmd = f"sleep {{2 if i % 10 == 0 else 0.1}}; echo {{job_id}} >> {{runs}}"
    code = main(["submit", "--state-dir", state, "--id", job_id, "--model", "llama-1b",
                 "--requests", "2", "--", "sh", "-c", cmd])
    assert code == 0, code
    if i == 7:  # resubmitting the same id is a no-op
        main(["submit", "--state-dir", state, "--id", job_id, "--model", "llama-1b",
              "--", "sh", "-c", "echo DUPLICATE >> " + runs])
"""

RAW_APPENDER = """
import json, os, sys, time
state, runs, who = sys.argv[1:4]
garbage = {garbage!r}
for i in range({n}):
    job_id = f"{{who}}-{{i}}"
    cmd = f"sleep {{2 if i % 10 == 0 else 0.1}}; echo {{job_id}} >> {{runs}}"
    line = json.dumps({{"id": job_id, "model": "llama-1b", "requests": 2,
                       "command": ["sh", "-c", cmd]}}) + "\\n"
    # s2 writes to its own spool file, where it may leave partial lines; s3 to the main queue,
    # which others append to concurrently, so only whole lines.
    path = f"{{state}}/queue.d/{{os.getuid()}}.jsonl" if who == "s2" else state + "/queue.jsonl"
    with open(path, "ab", buffering=0) as queue:
        if who == "s2" and i % 5 == 0:  # a partial line, completed a moment later
            queue.write(line[:20].encode())
            time.sleep(0.01)
            queue.write(line[20:].encode())
        else:
            queue.write(line.encode())
        if i % 17 == 3:
            queue.write((garbage[i % len(garbage)] + "\\n").encode())
    time.sleep(0.005)
"""

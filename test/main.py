"""Smoke test: run every Python example of the README; exit non-zero on any failure.

    cd test && python main.py

Examples whose first line is ``# needs: <module>`` are skipped (and reported) when that
module is not installed, and ``# needs: cuda`` ones when no CUDA device is visible.
"""

import importlib.util
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def examples(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def missing_need(code):
    first = code.splitlines()[0] if code else ""
    m = re.match(r"#\s*needs:\s*(\S+)", first)
    if not m:
        return None
    need = m.group(1)
    if need == "cuda":
        import torch

        return None if torch.cuda.is_available() else "no CUDA device"
    try:
        found = importlib.util.find_spec(need) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{need} not installed"


def main():
    blocks = examples(README.read_text())
    failed = passed = skipped = 0
    for i, code in enumerate(blocks, 1):
        why = missing_need(code)
        if why:
            print(f"example {i}: skipped ({why})")
            skipped += 1
            continue
        here = os.getcwd()
        try:
            with tempfile.TemporaryDirectory() as cwd:  # files an example writes go away
                os.chdir(cwd)
                exec(compile(code, f"README example {i}", "exec"), {"__name__": "__readme__"})
        except Exception:
            traceback.print_exc()
            print(f"example {i}: FAILED")
            failed += 1
        else:
            print(f"example {i}: ok")
            passed += 1
        finally:
            os.chdir(here)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

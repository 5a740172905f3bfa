"""Run every reproduce script in turn, passing the same options to each.

    python reproduce/all.py            # the paper's settings
    python reproduce/all.py --quick    # smoke runs
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("figure1_swiss_roll.py", "figure2_heartbeat.py")


def main():
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        completed = subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]])
        if completed.returncode != 0:
            sys.exit(f"{script} failed with exit code {completed.returncode}")


if __name__ == "__main__":
    main()

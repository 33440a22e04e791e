import sys
from pathlib import Path

# The source root is operator/ (a folder, not a package: `operator` is a stdlib module).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

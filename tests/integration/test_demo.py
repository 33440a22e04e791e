"""`make demo` runs `jitaccess sandbox --demo`; it must keep exiting 0 with the story it tells."""

import subprocess
import sys
from pathlib import Path


def test_demo_walks_a_request_through_activation_and_expiry(tmp_path):
    jitaccess = Path(sys.executable).parent / "jitaccess"
    result = subprocess.run(
        [str(jitaccess), "sandbox", "--demo", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "phases in Events: Active → Expired" in result.stdout
    active_policy = result.stdout.split("phase Active")[1].split("clock jumps")[0]
    assert "roles/compute.admin      user:alice@example.com  if (request.time >= timestamp(" in active_policy
    final_policy = result.stdout.split("phase Expired")[1].split("Events on the request")[0]
    assert "user:alice@example.com" not in final_policy and "group:ops@example.com" in final_policy
    story = result.stdout.split("Second story")[1]
    assert (
        'carol tries to approve: refused: activationapprovals.jitaccess.dev is forbidden: User "carol@example.com" '
        'cannot create resource "activationapprovals" in API group "jitaccess.dev" in the namespace "team-sre"'
        in story
    )
    assert story.index("bob approves") < story.index("phase Active") < story.index("phase Expired")
    assert "projects/my-production in the emulator (0 binding(s))" in story
    glass = result.stdout.split("Third story")[1]
    assert "every reviewer is alerted (Warning BreakGlassActivated)" in glass
    assert "Reviewed: status: False, ReviewRequired" in glass
    assert "Reviewed: status: True, Reviewed: reviewed by user:bob@example.com" in glass

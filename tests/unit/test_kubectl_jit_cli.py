"""`kubectl jit` as a command line, without a cluster: flags anywhere, the names it makes up,
JSON and YAML as kubectl prints them (and inert), errors as one kubectl-style line, shell
completion, --version, and the krew manifest. What needs a cluster is in
tests/integration/test_kubectl_jit.py."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
import unicodedata
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiException

from jitaccess.api.objects import NOT_PLAIN_TEXT, is_kubernetes_name
from jitaccess.api.times import parse_time
from jitaccess.kubectl_commands import generated_name
from jitaccess.kubectl_completion import candidates
from jitaccess.kubectl_jit import main, parser
from jitaccess.kubectl_output import dump, error_line, to_json, to_yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
TOKENS = st.text(alphabet="0123456789abcdef", min_size=6, max_size=6)
REQUEST = {"apiVersion": "jitaccess.dev/v1alpha1", "kind": "ActivationRequest", "metadata": {"name": "a-1"}}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, io.StringIO(""), err)
    return code, out.getvalue(), err.getvalue()


def kubeconfig(tmp_path: Path, server: str, namespace: str = "team-x") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "here", "context": {"cluster": "c", "user": "u", "namespace": namespace}},
                    {"name": "there", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": "here",
            }
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the command line ----------------------------------------------------------------------------


def test_global_flags_work_before_and_after_the_command_and_the_last_one_wins():
    top = parser()
    before = top.parse_args(["--context", "a", "-n", "ns", "-o", "json", "list", "--mine"])
    after = top.parse_args(["list", "--mine", "--context", "a", "-n", "ns", "-o", "json"])
    for args in (before, after):
        assert (args.context, args.namespace, args.output, args.mine) == ("a", "ns", "json", True)
    both = top.parse_args(["--context", "a", "-A", "pending", "--context", "b", "-oyaml"])
    assert (both.context, both.all_namespaces, both.output) == ("b", True, "yaml")
    kept = top.parse_args(["--context", "a", "show", "x"])  # absent after the command: not reset
    assert kept.context == "a" and not hasattr(kept, "output")


def test_start_is_a_time_or_a_duration_from_now(capsys):
    args = parser().parse_args(["request", "g", "--reason", "r", "--start", "+2h"])
    assert abs(parse_time(args.start) - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(seconds=5)
    args = parser().parse_args(["request", "g", "--reason", "r", "--start", "2030-01-02T03:04:05+01:00"])
    assert args.start == "2030-01-02T02:04:05Z"
    code, _, _ = run("request", "g", "--reason", "r", "--start", "tomorrow")
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: argument --start: 'tomorrow' is not an RFC 3339 timestamp")
    assert "See 'kubectl jit request --help' for usage." in err


def test_flags_that_mean_nothing_to_a_command_are_refused_not_ignored():
    code, _, err = run("approve", "x", "-o", "json")
    assert code == 1 and err == (
        'error: -o/--output does not apply to "approve" '
        "(only to list, pending, grants, show, request, extend, status)\n"
    )
    code, _, err = run("revoke", "x", "-A")
    assert code == 1 and err.startswith('error: -A/--all-namespaces does not apply to "revoke"')


def test_version_is_the_installed_distributions():
    code, out, _ = run("--version")
    assert code == 0 and out == f"kubectl-jit {version('jitaccess')}\n"


# -- names ---------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(user=st.one_of(st.emails(), st.text()), grant=st.text(), token=TOKENS)
def test_generated_names_are_always_kubernetes_names(user, grant, token):
    name = generated_name(user.partition("@")[0], grant, token=token)
    assert len(name) <= 63 and LABEL.fullmatch(name), name
    assert is_kubernetes_name(name) and name.endswith(token)
    longer = generated_name(grant, "approve", token=token, limit=253)
    assert len(longer) <= 253 and LABEL.fullmatch(longer) and is_kubernetes_name(longer)


def test_generated_names_keep_what_tells_them_apart():
    assert generated_name("José.O'Neil", "Sandbox.Compute_Admin", token="0a1b2c") == (
        "jose-o-neil-sandbox-compute-admin-0a1b2c"
    )
    name = generated_name("a" * 70, "b" * 300, token="0a1b2c")
    assert len(name) == 63 and re.fullmatch(r"a{27,28}-b{27,28}-0a1b2c", name)  # the longer gave way first
    assert generated_name("", "..", token="0a1b2c") == "request-0a1b2c"


# -- output --------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(text=st.text())
def test_json_and_yaml_are_the_same_data_with_nothing_raw_for_a_terminal(text):
    document = {"spec": {"justification": text, "roles": [text]}, "metadata": {text: 1}}
    for printed, read in ((to_json(document), json.loads), (to_yaml(document), yaml.safe_load)):
        assert read(printed) == document
        raw = {
            f"U+{ord(ch):04X}" for ch in printed if ch != "\n" and unicodedata.category(ch) in NOT_PLAIN_TEXT
        }
        assert not raw, (printed, raw)


def test_yaml_keeps_letters_readable_and_does_not_fold_long_lines():
    assert to_yaml({"who": "José"}) == "who: José\n"
    assert to_yaml({"x": "y" * 500}).count("\n") == 1
    assert to_yaml({"x": "two\nlines"}) == 'x: "two\\nlines"\n'  # a value cannot forge lines


def test_lists_and_names_print_as_kubectl_prints_them():
    out = io.StringIO()
    dump(out, "json", [REQUEST, {"metadata": {"name": "b-2"}}], "ActivationRequest")
    listed = json.loads(out.getvalue())
    assert listed["apiVersion"] == "v1" and listed["kind"] == "List"
    assert [item["kind"] for item in listed["items"]] == ["ActivationRequest"] * 2  # filled in
    out = io.StringIO()
    dump(out, "yaml", [REQUEST], "ActivationRequest", single=True)
    assert yaml.safe_load(out.getvalue()) == REQUEST
    out = io.StringIO()
    dump(out, "name", [REQUEST, {"metadata": {"name": "b-2"}}], "ActivationRequest")
    assert out.getvalue() == "activationrequest.jitaccess.dev/a-1\nactivationrequest.jitaccess.dev/b-2\n"


# -- errors --------------------------------------------------------------------------------------


def test_a_missing_kubeconfig_a_bad_context_and_a_closed_port_are_one_line_errors(tmp_path):
    code, out, err = run("--kubeconfig", str(tmp_path / "nope"), "list")
    assert (code, out, err) == (1, "", f"error: stat {tmp_path / 'nope'}: no such file or directory\n")
    port = closed_port()
    config = kubeconfig(tmp_path, f"https://127.0.0.1:{port}")
    code, _, err = run("list", "--kubeconfig", str(config), "--context", "nope")
    assert (code, err) == (1, 'error: context "nope" does not exist\n')
    code, _, err = run("grants", "--kubeconfig", str(config))
    assert code == 1 and err == (
        f"error: the connection to the server 127.0.0.1:{port} was refused - "
        "did you specify the right host or port?\n"
    )
    broken = tmp_path / "broken"
    broken.write_text("clusters: [")
    code, _, err = run("list", "--kubeconfig", str(broken))
    assert code == 1 and err.startswith(f'error: error loading config file "{broken}": ')
    assert err.count("\n") == 1


def test_the_installed_plugin_never_shows_a_traceback(tmp_path):
    config = kubeconfig(tmp_path, f"https://127.0.0.1:{closed_port()}")
    for argv in (
        ["--kubeconfig", str(tmp_path / "nope"), "list"],
        ["show", "x", "--kubeconfig", str(config)],
    ):
        done = subprocess.run([str(BIN / "kubectl-jit"), *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_what_the_api_server_answers_is_one_line_as_kubectl_words_it():
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = json.dumps(
        {
            "kind": "Status",
            "reason": "Invalid",
            "message": 'ActivationRequest "x" is invalid:\nspec.duration: 3h exceeds 2h\n\x1b[31mred',
        }
    )
    assert error_line(refused, "https://k:6443") == (
        'Error from server (Invalid): ActivationRequest "x" is invalid:; spec.duration: 3h exceeds 2h; '
        "\\x1b[31mred"
    )
    bare = ApiException(status=503, reason="Service Unavailable")
    bare.body = "<html>busy</html>"
    assert error_line(bare, "https://k:6443") == (
        "Error from server (ServiceUnavailable): the server answered 503 Service Unavailable"
    )


# -- completion ----------------------------------------------------------------------------------


def complete(*words: str) -> list[str]:
    out = io.StringIO()
    assert candidates(list(words), parser(), out) == 0
    return out.getvalue().splitlines()


def test_complete_offers_commands_flags_and_formats_without_a_cluster(tmp_path):
    assert complete("")[:3] == ["approve", "completion", "deny"] and complete("")[-1] == ":4"
    assert complete("li") == ["list", ":4"]
    assert complete("list", "--m") == ["--mine", ":4"]
    assert complete("--context", "a", "list", "-o", "") == ["json", "name", "wide", "yaml", ":4"]
    assert complete("completion", "") == ["bash", "zsh", ":4"]
    assert complete("--kubeconfig", "") == [":0"]  # the shell completes file names
    config = kubeconfig(tmp_path, f"https://127.0.0.1:{closed_port()}")
    assert complete("--kubeconfig", str(config), "--context", "") == ["here", "there", ":4"]
    # No cluster to ask: no names, and no error in the middle of someone's command line.
    assert complete("--kubeconfig", str(config), "approve", "") == [":4"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_are_generated_for_kubectl_jit(shell):
    code, script, _ = run("completion", shell)
    assert code == 0 and "_kubectl_jit_words()" in script and "kubectl-jit __complete" in script
    if shell == "bash":
        assert "complete -o bashdefault -F _shtab_kubectl_jit kubectl-jit" in script
    else:
        assert (
            script.startswith("#compdef kubectl-jit")
            and "compdef _shtab_kubectl_jit -N kubectl-jit" in script
        )
    checker = shutil.which(shell)
    if checker is not None:
        done = subprocess.run([checker, "-n"], input=script, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_bash_script_completes_commands_and_formats(tmp_path):
    _, script, _ = run("completion", "bash")
    (tmp_path / "jit.bash").write_text(script)

    def offered(*words: str) -> list[str]:
        line = " ".join(f'"{w}"' for w in words)
        probe = f"source {tmp_path / 'jit.bash'}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        probe += '_shtab_kubectl_jit; printf "%s\\n" "${COMPREPLY[@]}"'
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.split()

    assert offered("kubectl-jit", "ap") == ["approve"]
    assert sorted(offered("kubectl-jit", "list", "-o", "")) == ["json", "name", "wide", "yaml"]


# -- krew ----------------------------------------------------------------------------------------


def test_the_krew_manifest_installs_this_versions_release():
    manifest = yaml.safe_load((ROOT / "kubectl-jit" / "krew.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "jit"
    spec = manifest["spec"]
    assert spec["version"] == f"v{VERSION}" and len(spec["shortDescription"]) <= 50 and spec["description"]
    artefact = (
        f"https://github.com/jitaccess/jitaccess/releases/download/v{VERSION}/kubectl-jit-{VERSION}.tar.gz"
    )
    assert spec["platforms"]
    for platform in spec["platforms"]:
        assert platform["uri"] == artefact and platform["bin"] == "kubectl-jit"
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["selector"]["matchExpressions"] or platform["selector"]["matchLabels"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh")
def test_the_zsh_script_registers_with_eval_and_asks_kubectl_jit_for_words():
    _, script, _ = run("completion", "zsh")
    probe = (
        'autoload -U compinit; compinit -u; eval "$SCRIPT"; print -- "${_comps[kubectl-jit]}"; '
        # compadd stands in for the completion system: print the words after "--".
        'compadd() { shift $(( ${@[(i)--]} )); print -l -- "$@" }; '
        'LBUFFER="kubectl-jit list -o w"; _kubectl_jit_words'
    )
    env = {"SCRIPT": script, "PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/nonexistent"}
    done = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["_shtab_kubectl_jit", "wide"], done.stdout + done.stderr

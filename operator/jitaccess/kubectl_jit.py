"""`kubectl jit`: the kubectl plugin for people who ask for, approve and revoke access.

    kubectl jit request GRANT --role R --for 30m --reason "INC-1: ..."   (prints the request name)
    kubectl jit request GRANT --start +2h ...   (scheduled: RFC 3339, or a duration from now)
    kubectl jit request GRANT --break-glass --reason "..."   (at once, no approval; reviewed afterwards)
    kubectl jit extend NAME --for 30m --reason "..."   (more time for Active access, without a gap)
    kubectl jit approve|deny NAME [--comment TEXT] [--yes]   (shows what you decide on, then asks)
    kubectl jit review NAME [--revoke] --comment TEXT   (a break-glass request, as one of its reviewers)
    kubectl jit revoke NAME
    kubectl jit list [--mine | --pending-my-approval] [-A]
    kubectl jit pending [-A]                 what awaits my approval, at which step
    kubectl jit grants                       what I may activate
    kubectl jit show NAME                    everything about one request, as kubectl describe shows it
    kubectl jit status NAME                  waits, with a progress line, until Active or ended
    kubectl jit completion bash|zsh          a shell completion script

The kubectl flags work anywhere on the line, before or after the command: --kubeconfig,
--context, -n/--namespace, -A/--all-namespaces and -o/--output json|yaml|name|wide. Installed
as the console script `kubectl-jit`, so kubectl finds it on PATH. It speaks to the cluster as
you (your kubeconfig): the admission webhooks stamp who you are, exactly as for `kubectl apply`,
so the plugin cannot do anything you could not do with kubectl itself. Whatever goes wrong ends
as one kubectl-style line on stderr (`error: ...`, `Error from server (Forbidden): ...`) and exit
code 1, never a traceback.

Whatever a request says is someone else's input: it is printed inert (control characters and
terminal escapes shown escaped), and an approval is pinned to the object and the terms shown.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO

from jitaccess import __version__
from jitaccess.api.durations import DurationError, parse_duration
from jitaccess.api.phases import Phase
from jitaccess.api.times import format_time, parse_time
from jitaccess.kubectl_commands import Cli, Failed, connect
from jitaccess.kubectl_completion import candidates, script
from jitaccess.kubectl_output import (
    OUTPUTS,
    describe,
    dump,
    error_line,
    grant_table,
    pending_table,
    request_table,
)
from jitaccess.kubectl_review import Refused, inert

REQUEST = "ActivationRequest"
# Where -o and -A mean something; elsewhere they are refused rather than silently ignored.
WITH_OUTPUT = ("list", "pending", "grants", "show", "request", "extend", "status")
WITH_ALL_NAMESPACES = ("list", "pending")


def version() -> str:
    """The installed distribution's version; the package's own when run from a source tree."""
    try:
        return importlib.metadata.version("jitaccess")
    except importlib.metadata.PackageNotFoundError:
        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse reporting a mistake as kubectl does: `error: ...`, where to read more, exit 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}\nSee '{self.prog} --help' for usage.\n")


class _Version(argparse.Action):
    """--version, printed to the `out` main() was given (argparse's own prints to sys.stdout)."""

    def __init__(self, option_strings: Sequence[str], dest: str, out: TextIO, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.out = out

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"kubectl-jit {version()}", file=self.out)
        parser.exit(0)


def start_time(text: str) -> str:
    """--start: an RFC 3339 time, or a duration from now (+2h, +1h30m), as spec.startTime."""
    if text.startswith("+"):
        try:
            return format_time(datetime.now(UTC) + parse_duration(text[1:]))
        except DurationError as why:
            raise argparse.ArgumentTypeError(str(why)) from None
    try:
        return format_time(parse_time(text))
    except ValueError as why:
        raise argparse.ArgumentTypeError(f"{why}, or a duration from now like +2h") from None


def global_flags() -> argparse.ArgumentParser:
    """The flags kubectl users put anywhere on the line, given to the top parser and to every
    command's: their default is SUPPRESS in both, so a flag after the command is not reset by
    its absence there, and the last one given wins."""
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    flags.add_argument("--kubeconfig", metavar="PATH", help="default: $KUBECONFIG, then ~/.kube/config")
    flags.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    flags.add_argument("-n", "--namespace", metavar="NAME", help="default: the context's namespace")
    flags.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list, pending: every namespace you may read"
    )
    flags.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        metavar="FORMAT",
        help=f"{'|'.join(OUTPUTS)}, for {', '.join(WITH_OUTPUT)} (default: a table)",
    )
    return flags


def parser(out: TextIO | None = None, prog: str = "kubectl jit") -> argparse.ArgumentParser:
    flags = global_flags()
    top = _Parser(prog=prog, description="Just-In-Time access to Google Cloud", parents=[flags])
    top.add_argument("--version", action=_Version, out=out or sys.stdout, help="print the version and exit")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[flags])

    _filing_commands(command)
    listing = command("list", "requests in the namespace")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--mine", action="store_true", help="only those I filed")
    which.add_argument("--pending-my-approval", action="store_true", help="the same as pending")
    command("pending", "requests awaiting my approval, at which step (list --pending-my-approval)")
    command("grants", "what I may activate")
    command("show", "everything about one request, as kubectl describe shows it").add_argument("request")
    status = command("status", "wait until a request is Active or has ended")
    status.add_argument("request")
    status.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    completion = command("completion", "print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"))
    return top


def _filing_commands(command: Any) -> None:
    """The commands that file something: request, extend, review, approve, deny, revoke."""
    request = command("request", "ask to activate roles of a grant")
    request.add_argument("grant")
    request.add_argument(
        "--role", action="append", default=[], help="repeatable; default: all the grant's roles"
    )
    request.add_argument(
        "--for", dest="duration", default=None, help="how long, e.g. 30m (default: the grant's)"
    )
    request.add_argument(
        "--reason", required=True, help="the justification, e.g. a ticket and what you will do"
    )
    request.add_argument("--start", type=start_time, default=None, help="RFC 3339, or from now: +2h")
    request.add_argument("--name", default=None, help="default: generated from your name and the grant")
    request.add_argument(
        "--break-glass",
        action="store_true",
        help="activate at once without approval, where the grant allows it; every reviewer is alerted",
    )
    extend = command("extend", "more time for Active access, without a gap")
    extend.add_argument("request")
    extend.add_argument("--for", dest="duration", required=True, help="how much longer, e.g. 30m")
    extend.add_argument("--reason", required=True, help="why more time is needed")
    extend.add_argument("--name", default=None)
    review = command("review", "review a break-glass activation after the fact")
    review.add_argument("request")
    review.add_argument("--revoke", action="store_true", help="end its access now (recorded as your review)")
    review.add_argument("--comment", required=True, help="what you found")
    for verb in ("approve", "deny"):
        decide = command(verb, f"{verb} a request that awaits approval (shows it first, then asks)")
        decide.add_argument("request")
        decide.add_argument("--comment", default="")
        decide.add_argument(
            "-y", "--yes", action="store_true", help="do not ask; needed when stdin is not a terminal"
        )
    command("revoke", "end access early").add_argument("request")


def main(
    argv: Sequence[str] | None = None,
    out: TextIO = sys.stdout,
    stdin: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    err = err or sys.stderr
    if argv[:1] == ["__complete"]:  # kubectl's plugin completion protocol (see kubectl_completion)
        return candidates(argv[1:], parser(out), out)
    try:
        args = parser(out).parse_args(argv)
    except SystemExit as done:  # --help, --version, or a mistake argparse has reported
        return done.code if isinstance(done.code, int) else 1
    if (problem := _misplaced(args)) is not None:
        print(f"error: {problem}", file=err)
        return 1
    cli: Cli | None = None
    try:
        if args.command == "completion":
            print(script(parser(out, prog="kubectl-jit"), args.shell), end="", file=out)
            return 0
        cli = connect(_flag(args, "kubeconfig"), _flag(args, "context"), _flag(args, "namespace"), out)
        return _run(cli, args, stdin or sys.stdin)
    except (Refused, Failed) as why:
        print(f"error: {inert(why)}", file=err)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout(out)  # the reader (| head) has gone: nothing to say, and no one to say it to
    except Exception as error:  # kubectl-style, never a traceback: config, network, API answers
        print(error_line(error, cli.server if cli else ""), file=err)
    finally:
        for warning in cli.warnings if cli else ():
            print(f"warning: {inert(warning)}", file=err)
    return 1


def complete_main() -> int:
    """The executable `kubectl_complete-jit` that kubectl 1.26+ runs to complete `kubectl jit`."""
    return main(["__complete", *sys.argv[1:]])


def _flag(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _misplaced(args: argparse.Namespace) -> str | None:
    if _flag(args, "output") and args.command not in WITH_OUTPUT:
        return f'-o/--output does not apply to "{args.command}" (only to {", ".join(WITH_OUTPUT)})'
    if _flag(args, "all_namespaces") and args.command not in WITH_ALL_NAMESPACES:
        return f'-A/--all-namespaces does not apply to "{args.command}" (only to list and pending)'
    return None


def _quiet_stdout(out: TextIO) -> None:
    if out is sys.stdout:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run(cli: Cli, args: argparse.Namespace, stdin: TextIO) -> int:
    if args.command in ("request", "extend", "show", "status"):
        return _one_request(cli, args)
    if args.command == "review":
        cli.decide(args.request, "Revoke" if args.revoke else "Review", args.comment)
    elif args.command in ("approve", "deny"):
        decision = "Approve" if args.command == "approve" else "Deny"
        cli.approve(args.request, decision, args.comment, args.yes, stdin)
    elif args.command == "revoke":
        cli.revoke(args.request)
    else:
        _listing(cli, args)
    return 0


def _one_request(cli: Cli, args: argparse.Namespace) -> int:
    """request, extend, show, status: one ActivationRequest, shown as -o asks."""
    output, now = _flag(args, "output"), datetime.now(UTC)
    if args.command == "show" and output is None:
        describe(cli.out, cli.show(args.request), now)
        return 0
    if args.command == "request":
        body = cli.request(
            args.grant, args.role, args.duration, args.reason, args.name, args.break_glass, args.start
        )
    elif args.command == "extend":
        body = cli.extend(args.request, args.duration, args.reason, args.name)
    elif args.command == "status":
        body = cli.status(args.request, args.timeout, args.interval, quiet=output is not None)
    else:
        body = cli.get(args.request)
    name = body["metadata"]["name"]
    if output == "wide":
        request_table(cli.out, [body], wide=True, namespaced=False, now=now)
    elif output is not None:
        dump(cli.out, output, [body], REQUEST, single=True)
    elif args.command in ("request", "extend"):
        what = f"extends {args.request}" if args.command == "extend" else f"created in {cli.namespace}"
        print(f"activationrequest/{name} {what}; follow it with: kubectl jit status {name}", file=cli.out)
    if args.command == "status":
        return 0 if (body.get("status") or {}).get("phase") == Phase.ACTIVE else 1
    return 0


def _listing(cli: Cli, args: argparse.Namespace) -> None:
    """list, pending, grants: tables, or the objects as -o asks."""
    output, everywhere, now = _flag(args, "output"), bool(_flag(args, "all_namespaces")), datetime.now(UTC)
    wide = output == "wide"
    if args.command == "grants":
        eligible = cli.eligible()
        if output in (None, "wide"):
            grant_table(cli.out, [grant for _, grant in eligible], wide)
        else:
            dump(cli.out, output, [body for body, _ in eligible], "EligibleGrant")
    elif args.command == "pending" or args.pending_my_approval:
        mine = cli.pending(everywhere)
        if output in (None, "wide"):
            pending_table(cli.out, mine, wide, everywhere, now)
        else:
            dump(cli.out, output, [awaited.body for awaited in mine], REQUEST)
    else:
        items = cli.requests(everywhere, args.mine)
        if output in (None, "wide"):
            request_table(cli.out, items, wide, everywhere, now)
        else:
            dump(cli.out, output, items, REQUEST)


if __name__ == "__main__":
    raise SystemExit(main())

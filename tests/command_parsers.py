"""Each container command in k8s/, parsed by the real program's own argument parser at the
pinned version: a flag the version lacks fails here, not in a crash-looping pod.

`parse(argv, env)` expands Kubernetes' $(VAR) references from `env` first (as the kubelet
does), then hands the arguments to vLLM's OpenAI server parser, `accelerate launch`'s, the
MLflow CLI's (click), `recall`'s, DVC's, or a pipelines/ script's argparse parser.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import sys
from pathlib import Path
from unittest import mock

from conftest import ROOT


class CommandError(AssertionError):
    pass


def expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion; an unknown reference stays as written, as in the kubelet."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]


def _argparse(parser: argparse.ArgumentParser, args: list[str], what: str):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(args)
    except SystemExit as exit_:
        raise CommandError(f"{what} rejects {args}: {err.getvalue().strip()[-400:]}") from exit_


def vllm_server(args: list[str]):
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return _argparse(make_arg_parser(FlexibleArgumentParser()), args, "vLLM's OpenAI server")


def accelerate_launch(args: list[str]):
    from accelerate.commands.launch import launch_command_parser

    return _argparse(launch_command_parser(), args, "accelerate launch")


def mlflow_cli(args: list[str]):
    import click
    from mlflow.cli import cli

    try:
        command = cli.get_command(click.Context(cli), args[0]) if args else None
        if command is None:
            raise CommandError(f"mlflow has no command {args[:1]}")
        return command.make_context(f"mlflow {args[0]}", list(args[1:]))
    except click.ClickException as err:
        raise CommandError(f"mlflow rejects {args}: {err.format_message()}") from err


def recall_cli(args: list[str]):
    from recall.cli import build_parser

    return _argparse(build_parser(), args, "recall")


def dvc_cli(args: list[str]):
    from dvc.cli import parse_args
    from dvc.cli.parser import DvcParserError

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            return parse_args(args)
    except (SystemExit, DvcParserError) as exit_:
        raise CommandError(f"dvc rejects {args}: {exit_} {err.getvalue().strip()[:300]}") from exit_


def script(path: str, args: list[str]):
    """A pipelines/ script's own parser: its main() run up to parse_args, which is stopped."""
    seen = {}

    def stop(self, argv=None, namespace=None):
        seen["args"] = argparse.ArgumentParser.parse_known_args(self, argv, namespace)
        if seen["args"][1]:
            self.error(f"unrecognized arguments: {' '.join(seen['args'][1])}")
        raise _Parsed

    if not (ROOT / path).is_file():
        raise CommandError(f"no script {path}")
    with mock.patch.object(sys, "argv", [path, *args]), \
            mock.patch.object(argparse.ArgumentParser, "parse_args", stop):
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                runpy.run_path(str(ROOT / path), run_name="__main__")
        except _Parsed:
            return seen["args"][0]
        except SystemExit as exit_:
            raise CommandError(f"{path} rejects {args}: {err.getvalue().strip()[-400:]}") from exit_
    raise CommandError(f"{path} never parsed its arguments")


class _Parsed(Exception):
    pass


def parse(argv: list[str], env: dict[str, str] | None = None):
    """Parse a container's command + args as its program would; CommandError if it would not."""
    argv = expand(argv, env or {})
    prog, rest = Path(argv[0]).name, argv[1:]
    if prog.startswith("python") and rest[:2] == ["-m", "vllm.entrypoints.openai.api_server"]:
        return vllm_server(rest[2:])
    if prog.startswith("python") and rest[:2] == ["-m", "accelerate.commands.launch"]:
        return accelerate_launch(rest[2:])
    if prog.startswith("python") and rest and rest[0].startswith("pipelines/"):
        return script(rest[0], rest[1:])
    if prog == "accelerate" and rest[:1] == ["launch"]:
        return accelerate_launch(rest[1:])
    if prog == "mlflow":
        return mlflow_cli(rest)
    if prog == "recall":
        return recall_cli(rest)
    if prog == "dvc":
        return dvc_cli(rest)
    raise CommandError(f"no parser known for {argv[:3]}: add one to tests/command_parsers.py")

"""Every `bridge <command> --option` the README and docs/ write exists in the CLI: the docs
cannot drift from bridge/cli.py unnoticed (a renamed or removed option, a command that is
not there).

Where: fenced code blocks and inline code spans of README.md and docs/*.md. What: each
`bridge` (at the start of a shell command: a line, or after `$`, `sudo`, `python -m`, `;`,
`&&`, `|`, `(`) followed by a word that names a command of bridge.cli.main; then its
group's subcommand (`topology apply`, `dlq retry`); then every `-x` / `--option` up to the
end of that shell command is checked against the options of the main group, the group and
the command, each where click takes it (`bridge --config F run`, `bridge dlq --archive
list`). Brackets of usage lines (`[--since 6h | TIME]`) are read through; other tools'
options (`scripts/cluster`, `rabbitmqctl`, `pg_dump`) are never looked at. A code span or
line whose word after `bridge` is no command (prose, `bridge's`) is left alone, unless it
looks like one: `bridge <word> --option`, which must then name a command.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from bridge.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"(?<!`)``?(?!`)([^`\n]+?)(?<!`)``?(?!`)")
PREFIX = re.compile(r"(?:^|\$|\bsudo|\bpython3? -m|[;&|(])\s*$")
END = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<", "#"}
OPTION = re.compile(r"^\[?(?P<opt>--?[A-Za-z][A-Za-z0-9-]*)")
ALWAYS = {"--help", "-h"}
COMMENT = re.compile(r"<!--.*?-->", re.S)


def snippets(text: str) -> Iterator[str]:
    """Shell lines of fenced blocks (continuations joined), then inline code spans; not
    what HTML comments hold (`<!-- TODO-merge: ... -->` notes name what is not built)."""
    text = COMMENT.sub("", text)
    for block in FENCE.findall(text):
        yield from block.replace("\\\n", " ").splitlines()
    outside = FENCE.sub("", text)
    yield from SPAN.findall(outside)


def invocations(line: str) -> Iterator[list[str]]:
    """The words after each `bridge` that starts a shell command, up to that command's end."""
    for found in re.finditer(r"(?<![\w./-])bridge(?=\s)", line):
        if not PREFIX.search(line[: found.start()]):
            continue
        words: list[str] = []
        depth = 0
        for word in line[found.end() :].split():
            depth += word.count("[") - word.count("]")
            if depth <= 0 and (word in END or word.startswith("#")):
                break
            words.append(word)
        if words:
            yield words


def options_of(command: click.Command) -> set[str]:
    names = set(ALWAYS)
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def check(words: list[str]) -> list[str]:
    """What is wrong with one invocation's words (empty: nothing, or not an invocation)."""
    allowed = options_of(main)
    chain: list[str] = []
    group: click.Command = main
    rest = list(words)
    # options of main, then a command, then (for a group) its options and a subcommand
    while rest:
        word = rest[0]
        opt = OPTION.match(word)
        if opt:
            if opt["opt"] not in allowed:
                return [f"bridge {' '.join(chain)}: no option {opt['opt']}".replace("  ", " ")]
            rest.pop(0)
            # the value of an option that takes one (not a flag)
            param = next((p for p in group.params if opt["opt"] in getattr(p, "opts", ())), None)
            if isinstance(param, click.Option) and not param.is_flag and "=" not in word:
                rest = rest[1:]
            continue
        if not isinstance(group, click.Group):
            break
        name = word.strip("`'\",.:)")
        names = name.split("|")  # `dlq list|retry|drop`: each of them
        sub = group.commands.get(names[0])
        missing = [n for n in names if n not in group.commands]
        if sub is None or missing:
            if not chain and not any(OPTION.match(w) for w in rest[1:]):
                return []  # prose: `bridge` followed by no command and no option
            where = f"bridge {' '.join(chain)}".strip()
            return [f"{where}: no command {(missing or [name])[0]!r} (in {' '.join(words)!r})"]
        chain.append(name)
        group = sub
        allowed = options_of(sub)  # click takes a group's options before its subcommand
        rest.pop(0)
    if isinstance(group, click.Group) and group is not main and not rest:
        return []  # `bridge dlq` alone, naming the group
    problems = []
    for word in rest:
        opt = OPTION.match(word)
        if opt and opt["opt"] not in allowed:
            problems.append(f"bridge {' '.join(chain)}: no option {opt['opt']}")
    return problems


def test_every_bridge_option_in_the_docs_exists() -> None:
    problems = []
    seen = 0
    for doc in DOCUMENTS:
        for line in snippets(doc.read_text()):
            for words in invocations(line):
                seen += 1
                problems += [f"{doc.relative_to(ROOT)}: {p}" for p in check(words)]
    assert seen > 50, f"only {seen} bridge commands found in the docs: is the parser broken?"
    assert problems == [], "\n".join(sorted(set(problems)))


@pytest.mark.parametrize(
    "line, wrong",
    [
        ("bridge replay --to LONDON --sinse 6h", "no option --sinse"),
        ("bridge dlq retry --idd X", "no option --idd"),
        ("bridge verfiy --json", "no command 'verfiy'"),
        ("bridge dlq list|retry|purge", "no command 'purge'"),
        ("bridge topology apply --amqp-url x --bogus", "no option --bogus"),
        ("sudo bridge --config b.toml status --event X --yaml", "no option --yaml"),
        ("bridge --bogus status", "no option --bogus"),
        ("bridge dlq list --archive", "no option --archive"),
        ("bridge run --config b.toml", "no option --config"),
    ],
)
def test_a_wrong_option_or_command_is_caught(line: str, wrong: str) -> None:
    found = [p for words in invocations(line) for p in check(words)]
    assert any(wrong in p for p in found), found


@pytest.mark.parametrize(
    "line",
    [
        "bridge dlq --archive list --json",
        "bridge dlq --archive list|retry|drop",
        "bridge replay --to LONDON [--since 6h | 2026-11-27T10:00:00Z] [--until TIME]",
        "bridge install-triggers -t orders --sql   # review",
        "bridge cleanup --older-than 90d --dry-run | tail -3",
        "python -m bridge --log-level DEBUG run",
        "bridge run (dispatcher) ── wakes on LISTEN/NOTIFY",
        "the bridge sites talk --to each other",
    ],
)
def test_right_usage_and_prose_pass(line: str) -> None:
    assert [p for words in invocations(line) for p in check(words)] == []


def test_inline_spans_are_read_and_html_comments_left_out() -> None:
    text = "see `bridge status --bogus` <!-- TODO-merge: `bridge status --json` -->"
    assert list(snippets(text)) == ["bridge status --bogus"]

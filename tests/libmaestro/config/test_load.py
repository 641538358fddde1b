"""Tests for Maestro.toml loading: real files in tmp_path, parsed with load_config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import libmaestro.config as config_pkg
from libmaestro.config import (
    Container,
    ContainerRuntime,
    ExecutorConfig,
    ExecutorType,
    MailType,
    Memory,
    MemoryConfig,
    ProjectConfig,
    SlurmConfig,
    StagingMode,
    TimeLimit,
    find_config_file,
    load_config,
    parse_config,
)
from libmaestro.config.model import SshTarget
from libmaestro.errors import ConfigError, ConfigIssue


def write_config(directory: Path, text: str, name: str = "Maestro.toml") -> Path:
    """Write `text` (dedented; line 1 is its first non-blank line) and return the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> ProjectConfig:
    return load_config(write_config(tmp_path, text))


def config_issues(tmp_path: Path, text: str) -> list[ConfigIssue]:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert all(issue.file == path for issue in caught.value.issues)
    return caught.value.issues


def single_issue(tmp_path: Path, text: str) -> ConfigIssue:
    issues = config_issues(tmp_path, text)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


SEED_EXAMPLE = """
[args]
# Message printed at initialization
init_msg = "Hello, world!"

[inputs]
# Input PDB files to the molecular dynamics workflow
input_files = ["data/1v9e_ph4.pdb", "data/1v9e_ph10.pdb", "data/BtCAII_ph4.pdb"]

[executor.name]
type = "Local"
container = { Podman = "ubuntu:rolling" }
staging_mode = "Copy"

[executor.slurm_base]
type = "Slurm"
staging_mode = "Copy"
container = { Podman = "ubuntu:rolling" }
cpus = 4
memory = { type = "per_cpu", amount = 8192 }
gpus = 2
tasks = 1
nodes = 1
partition = "skylake"
time = { days = 1, hours = 2 }
account = "my-account-id"
mail_user = "myemail@gmail.com"
mail_type = ["NONE", "TIME_LIMIT_50"]
additional_options = [
    ["qos", "high"]
]

[executor.slurm_inherited]
inherit = "slurm_base"
tasks = 2
cpus = 10
"""


# -- the seed's example --------------------------------------------------------------------


def test_load_config_seed_example_parses_to_expected_dataclasses(tmp_path: Path) -> None:
    path = write_config(tmp_path, SEED_EXAMPLE)
    podman = Container(ContainerRuntime.PODMAN, "ubuntu:rolling")
    base_slurm = SlurmConfig(
        cpus=4,
        memory=MemoryConfig(Memory.PER_CPU, 8192),
        gpus=2,
        tasks=1,
        nodes=1,
        partition="skylake",
        time=TimeLimit(days=1, hours=2),
        account="my-account-id",
        mail_user="myemail@gmail.com",
        mail_type=(MailType.NONE, MailType.TIME_LIMIT_50),
        additional_options=(("qos", "high"),),
    )
    inherited_slurm = SlurmConfig(
        cpus=10,
        memory=MemoryConfig(Memory.PER_CPU, 8192),
        gpus=2,
        tasks=2,
        nodes=1,
        partition="skylake",
        time=TimeLimit(days=1, hours=2),
        account="my-account-id",
        mail_user="myemail@gmail.com",
        mail_type=(MailType.NONE, MailType.TIME_LIMIT_50),
        additional_options=(("qos", "high"),),
    )
    expected = ProjectConfig(
        path=path,
        args={"init_msg": "Hello, world!"},
        inputs={
            "input_files": (
                tmp_path / "data/1v9e_ph4.pdb",
                tmp_path / "data/1v9e_ph10.pdb",
                tmp_path / "data/BtCAII_ph4.pdb",
            )
        },
        executors={
            "name": ExecutorConfig(
                name="name",
                type=ExecutorType.LOCAL,
                container=podman,
                staging_mode=StagingMode.COPY,
                line=9,
            ),
            "slurm_base": ExecutorConfig(
                name="slurm_base",
                type=ExecutorType.SLURM,
                container=podman,
                staging_mode=StagingMode.COPY,
                cpus=4,
                slurm=base_slurm,
                line=14,
            ),
            "slurm_inherited": ExecutorConfig(
                name="slurm_inherited",
                type=ExecutorType.SLURM,
                container=podman,
                staging_mode=StagingMode.COPY,
                cpus=10,
                slurm=inherited_slurm,
                line=32,
            ),
        },
        lines={
            ("args", "init_msg"): 3,
            ("inputs", "input_files"): 7,
            ("executor", "name"): 9,
            ("executor", "slurm_base"): 14,
            ("executor", "slurm_inherited"): 32,
        },
    )

    assert load_config(path) == expected


def test_load_config_empty_file_gives_empty_config(tmp_path: Path) -> None:
    config = load_text(tmp_path, "# nothing configured yet\n")

    assert config == ProjectConfig(path=tmp_path / "Maestro.toml")


def test_load_config_slurm_without_fields_gets_empty_slurm_config(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.local]
        type = "Local"
        [executor.cluster]
        type = "Slurm"
        """,
    )

    assert config.executors["local"].slurm is None
    assert config.executors["local"].staging_mode is StagingMode.SYMLINK
    assert config.executors["cluster"].slurm == SlurmConfig()


def test_load_config_modules_and_staging_none_are_kept(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.hpc]
        type = "Local"
        modules = ["gcc/12.2", "samtools"]
        staging_mode = "None"
        """,
    )

    executor = config.executors["hpc"]
    assert executor.modules == ("gcc/12.2", "samtools")
    assert executor.staging_mode is StagingMode.NONE
    assert executor.effective_staging is StagingMode.NONE


# -- syntax and top level ----------------------------------------------------------------


def test_load_config_syntax_error_reports_tomlkit_line(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [args]
        a = "x"
        b = = 3
        """,
    )

    assert issue.line == 3
    assert issue.key == ""
    assert issue.message.startswith("invalid TOML: ")
    assert 'expected TOML syntax such as key = "value"' in issue.message
    assert "at line" not in issue.message


def test_load_config_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [args]
        a = "x"
        a = "y"
        """,
    )

    assert issue.line == 3
    assert "define each key and table only once" in issue.message


def test_load_config_unknown_top_level_key_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [args]
        a = "x"

        [executors.local]
        type = "Local"
        """,
    )

    assert (issue.key, issue.line) == ("executors", 4)
    assert 'unknown key "executors"; did you mean "executor"?' in issue.message
    assert "(allowed: args, inputs, executor)" in issue.message


@pytest.mark.parametrize("table", ["args", "inputs", "executor"])
def test_load_config_top_level_table_of_wrong_type_rejected(tmp_path: Path, table: str) -> None:
    issue = single_issue(tmp_path, f'{table} = "x"\n')

    assert (issue.key, issue.line) == (table, 1)
    assert "expected" in issue.message
    assert 'got the string "x"' in issue.message


def test_load_config_unreadable_file_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == (missing, None)
    assert "cannot read the file" in issue.message


def test_load_config_non_utf8_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "Maestro.toml"
    path.write_bytes(b'[args]\nname = "\xff"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "not UTF-8" in caught.value.issues[0].message


def test_parse_config_needs_no_file(tmp_path: Path) -> None:
    config = parse_config('[args]\nname = "x"\n', path=tmp_path / "virtual.toml")

    assert config.args == {"name": "x"}
    assert config.path == tmp_path / "virtual.toml"


def test_config_error_str_names_file_line_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[executor.a]\ntype = "Local"\ncpu = 2\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert f"{path}:3: executor.a.cpu: unknown key" in str(caught.value)


# -- [args] and [inputs] -------------------------------------------------------------------


def test_load_config_args_numbers_and_booleans_become_toml_text(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [args]
        threads = 4
        ratio = 0.5
        verbose = true
        quiet = false
        message = "hi"
        "with.dot" = "ok"
        """,
    )

    assert config.args == {
        "threads": "4",
        "ratio": "0.5",
        "verbose": "true",
        "quiet": "false",
        "message": "hi",
        "with.dot": "ok",
    }
    assert config.lines[("args", "with.dot")] == 7


def test_load_config_args_date_rejected_with_hint(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, "[args]\nday = 2024-01-02\n")

    assert (issue.key, issue.line) == ("args.day", 2)
    assert "got the date/time 2024-01-02; write it in quotes" in issue.message


def test_load_config_inputs_relative_to_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project" / "conf"
    path = write_config(
        project,
        f"""
        [inputs]
        reads = ["data/a.fq", "../b.fq"]
        reference = "ref.fa"
        absolute = ["{tmp_path / "abs.txt"}"]
        empty = []
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("..") / "project" / "conf" / "Maestro.toml")

    assert config.inputs == {
        "reads": (project / "data/a.fq", project / "../b.fq"),
        "reference": (project / "ref.fa",),
        "absolute": (tmp_path / "abs.txt",),
        "empty": (),
    }
    assert all(p.is_absolute() for paths in config.inputs.values() for p in paths)
    assert config.path == Path("..") / "project" / "conf" / "Maestro.toml"
    assert path.is_file()


def test_load_config_inputs_expand_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))

    config = load_text(tmp_path / "p", '[inputs]\nref = ["~/genomes/hg38.fa"]\n')

    assert config.inputs["ref"] == (home / "genomes/hg38.fa",)


def test_load_config_inputs_are_not_checked_for_existence(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[inputs]\nreads = ["does/not/exist.fq"]\n')

    assert config.inputs["reads"] == (tmp_path / "does/not/exist.fq",)


def test_load_config_inputs_empty_path_rejected(tmp_path: Path) -> None:
    issues = config_issues(tmp_path, '[inputs]\nreads = ["a.fq", ""]\nref = ""\n')

    assert [(i.key, i.line) for i in issues] == [("inputs.reads[1]", 2), ("inputs.ref", 3)]
    assert all("expected a non-empty path string" in i.message for i in issues)


# -- wrong types ---------------------------------------------------------------------------

WRONG_TYPES = [
    ("args = { x = [1] }", "args.x", 'expected a string like x = "value"'),
    ("inputs = { x = 5 }", "inputs.x", 'expected an array of paths like x = ["data/a.fq"'),
    ('inputs = { x = ["a", 3] }', "inputs.x[1]", "got the integer 3"),
    (
        'executor = { x = "Local" }',
        "executor.x",
        'expected a table like [executor.x] type = "Local"',
    ),
    (
        "executor.x = { type = 1 }",
        "executor.x.type",
        'expected "Local" or "Slurm", got the integer 1',
    ),
    (
        'executor.x = { type = "Slurm", inherit = 5 }',
        "executor.x.inherit",
        "expected a non-empty string",
    ),
    (
        'executor.x = { type = "Slurm", container = "ubuntu" }',
        "executor.x.container",
        'like { Podman = "ubuntu:rolling" }, got the string "ubuntu"',
    ),
    (
        'executor.x = { type = "Slurm", container = { Docker = 3 } }',
        "executor.x.container.Docker",
        'expected a non-empty string like Docker = "ubuntu:rolling", got the integer 3',
    ),
    ('executor.x = { type = "Slurm", staging_mode = 1 }', "executor.x.staging_mode", '"Symlink"'),
    (
        'executor.x = { type = "Slurm", modules = "gcc" }',
        "executor.x.modules",
        'expected an array like ["gcc/12.2", "samtools"], got the string "gcc"',
    ),
    ('executor.x = { type = "Slurm", modules = ["gcc", ""] }', "executor.x.modules[1]", "empty"),
    (
        'executor.x = { type = "Slurm", cpus = "4" }',
        "executor.x.cpus",
        'expected a positive integer like cpus = 4, got the string "4"',
    ),
    ('executor.x = { type = "Slurm", cpus = 0 }', "executor.x.cpus", "got the integer 0"),
    ('executor.x = { type = "Slurm", tasks = 1.5 }', "executor.x.tasks", "got the float 1.5"),
    ('executor.x = { type = "Slurm", nodes = -2 }', "executor.x.nodes", "a positive integer"),
    ('executor.x = { type = "Slurm", gpus = -1 }', "executor.x.gpus", "a non-negative integer"),
    (
        'executor.x = { type = "Slurm", memory = "8G" }',
        "executor.x.memory",
        'expected a table like { type = "per_cpu", amount = 8192 } (amount in megabytes)',
    ),
    (
        'executor.x = { type = "Slurm", memory = { type = "per_node", amount = "8G" } }',
        "executor.x.memory.amount",
        "expected a positive integer",
    ),
    ('executor.x = { type = "Slurm", partition = 5 }', "executor.x.partition", 'partition = "'),
    ('executor.x = { type = "Slurm", account = "" }', "executor.x.account", "an empty string"),
    ('executor.x = { type = "Slurm", mail_user = [] }', "executor.x.mail_user", "an empty array"),
    (
        'executor.x = { type = "Slurm", time = "2h" }',
        "executor.x.time",
        'expected a table like { hours = 2, minutes = 30 }, got the string "2h"',
    ),
    ('executor.x = { type = "Slurm", time = { hours = 1.5 } }', "executor.x.time.hours", "float"),
    ('executor.x = { type = "Slurm", mail_type = 5 }', "executor.x.mail_type", '["END", "FAIL"]'),
    (
        'executor.x = { type = "Slurm", additional_options = "qos=high" }',
        "executor.x.additional_options",
        'expected an array like [["qos", "high"], ["exclusive"]], got the string "qos=high"',
    ),
    (
        'executor.x = { type = "Slurm", additional_options = [[1, 2]] }',
        "executor.x.additional_options[0]",
        'expected ["option", "value"] or ["flag"]',
    ),
    (
        'executor.x = { type = "Slurm", additional_options = { qos = 5 } }',
        "executor.x.additional_options.qos",
        'expected a string value like { qos = "high" } (or true for a bare flag)',
    ),
]


@pytest.mark.parametrize(("text", "key", "expected"), WRONG_TYPES)
def test_load_config_wrong_type_reports_expected_form(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    issue = single_issue(tmp_path, "# line 1\n" + text + "\n")

    assert (issue.key, issue.line) == (key, 2)
    assert expected in issue.message
    assert "expected" in issue.message and "got" in issue.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cpus", "true"),
        ("gpus", "false"),
        ("nodes", "true"),
        ("memory", '{ type = "per_cpu", amount = true }'),
        ("time", "{ hours = true }"),
    ],
)
def test_load_config_boolean_is_not_an_integer(tmp_path: Path, field: str, value: str) -> None:
    issue = single_issue(tmp_path, f'[executor.x]\ntype = "Slurm"\n{field} = {value}\n')

    assert issue.line == 3
    assert issue.key.startswith(f"executor.x.{field}")
    assert "integer" in issue.message
    assert "(a boolean is not a number)" in issue.message


# -- enumerations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ('type = "slurm"', "executor.x.type", 'got the string "slurm"; did you mean "Slurm"?'),
        (
            'staging_mode = "symlinks"',
            "executor.x.staging_mode",
            'expected "Symlink", "Copy", "Hardlink" or "None", got the string "symlinks"; '
            'did you mean "Symlink"?',
        ),
        ('mail_type = "end"', "executor.x.mail_type", 'did you mean "END"?'),
        ('mail_type = ["END", "FAILED"]', "executor.x.mail_type[1]", 'did you mean "FAIL"?'),
        (
            'memory = { type = "percpu", amount = 1 }',
            "executor.x.memory.type",
            'expected "per_cpu" or "per_node", got the string "percpu"; did you mean "per_cpu"?',
        ),
        (
            'container = { podman = "ubuntu" }',
            "executor.x.container.podman",
            'unknown container runtime "podman"; did you mean "Podman"? '
            "(allowed: Podman, Docker, Apptainer)",
        ),
    ],
)
def test_load_config_bad_enum_value_suggests_spelling(
    tmp_path: Path, line: str, key: str, expected: str
) -> None:
    text = f"[executor.x]\n{line}\n"
    if not line.startswith("type"):
        text += 'type = "Slurm"\n'

    issue = single_issue(tmp_path, text)

    assert (issue.key, issue.line) == (key, 2)
    assert expected in issue.message


def test_load_config_mail_type_single_string_is_one_element(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[executor.x]\ntype = "Slurm"\nmail_type = "ALL"\n')

    slurm = config.executors["x"].slurm
    assert slurm is not None
    assert slurm.mail_type == (MailType.ALL,)


def test_load_config_container_runtimes_parse(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.p]
        type = "Local"
        container = { Podman = "ubuntu:rolling" }
        [executor.d]
        type = "Local"
        container = { Docker = "python:3.12" }
        [executor.a]
        type = "Slurm"
        container = { Apptainer = "tools.sif" }
        """,
    )

    assert config.executors["p"].container == Container.podman("ubuntu:rolling")
    assert config.executors["d"].container == Container.docker("python:3.12")
    assert config.executors["a"].container == Container.apptainer("tools.sif")


def test_load_config_container_with_two_runtimes_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        '[executor.x]\ntype = "Local"\ncontainer = { Podman = "a", Docker = "b" }\n',
    )

    assert (issue.key, issue.line) == ("executor.x.container", 3)
    assert 'exactly one of "Podman", "Docker" or "Apptainer"' in issue.message
    assert 'got 2 runtimes ("Podman", "Docker")' in issue.message


def test_load_config_container_empty_table_rejected(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[executor.x]\ntype = "Local"\ncontainer = {}\n')

    assert (issue.key, issue.line) == ("executor.x.container", 3)
    assert "got an empty table" in issue.message


# -- time and memory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "key", "expected"),
    [
        ("{ hours = 1, mins = 30 }", "executor.x.time.mins", 'did you mean "minutes"?'),
        ("{ hours = -1 }", "executor.x.time.hours", "expected a non-negative integer"),
        ("{ hours = 0, minutes = 0 }", "executor.x.time", "greater than zero"),
        ("{}", "executor.x.time", "expected at least one of days, hours, minutes, seconds"),
    ],
)
def test_load_config_time_rejected(tmp_path: Path, time: str, key: str, expected: str) -> None:
    issue = single_issue(tmp_path, f'[executor.x]\ntype = "Slurm"\ntime = {time}\n')

    assert (issue.key, issue.line) == (key, 3)
    assert expected in issue.message


def test_load_config_time_as_subtable_locates_keys(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor.x]
        type = "Slurm"

        [executor.x.time]
        hours = 2
        minutes = -5
        """,
    )

    assert (issue.key, issue.line) == ("executor.x.time.minutes", 6)


def test_load_config_memory_missing_amount_rejected(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[executor.x]\ntype = "Slurm"\nmemory = { type = "per_node" }\n')

    assert (issue.key, issue.line) == ("executor.x.memory.amount", 3)
    assert 'missing key "amount"' in issue.message
    assert '{ type = "per_cpu", amount = 8192 }' in issue.message


def test_load_config_memory_unknown_key_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        '[executor.x]\ntype = "Slurm"\nmemory = { type = "per_cpu", amount = 1, unit = "G" }\n',
    )

    assert (issue.key, issue.line) == ("executor.x.memory.unit", 3)
    assert "(allowed: type, amount)" in issue.message


def test_time_limit_to_slurm_normalises() -> None:
    assert TimeLimit(minutes=90).to_slurm() == "0-01:30:00"
    assert TimeLimit(hours=25).to_slurm() == "1-01:00:00"
    assert TimeLimit(seconds=3661).to_slurm() == "0-01:01:01"
    assert TimeLimit(days=1, hours=2).to_slurm() == "1-02:00:00"


def test_load_config_time_keeps_components(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, '[executor.x]\ntype = "Slurm"\ntime = { hours = 1, minutes = 90 }\n'
    )

    slurm = config.executors["x"].slurm
    assert slurm is not None and slurm.time is not None
    assert slurm.time == TimeLimit(hours=1, minutes=90)
    assert slurm.time.to_slurm() == "0-02:30:00"


# -- executors: keys, types, options -----------------------------------------------------------


def test_load_config_unknown_executor_key_suggests_close_match(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[executor.big]\ntype = "Slurm"\ncpu = 4\n')

    assert (issue.key, issue.line) == ("executor.big.cpu", 3)
    assert issue.message.startswith('unknown key "cpu"; did you mean "cpus"? (allowed: type, ')
    assert "additional_options, poll_interval)" in issue.message


def test_load_config_executor_without_type_rejected(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[args]\na = "b"\n\n[executor.x]\ncpus = 4\n')

    assert (issue.key, issue.line) == ("executor.x.type", 4)
    assert 'missing key "type"; expected type = "Local" or type = "Slurm"' in issue.message


def test_load_config_empty_executor_name_rejected(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[executor.""]\ntype = "Local"\n')

    assert (issue.key, issue.line) == ('executor.""', 1)
    assert "cannot be empty" in issue.message


def test_load_config_quoted_executor_name_in_key(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[args]\n[executor."big.node"]\ntype = "Slurm"\ncpus = 0\n')

    assert (issue.key, issue.line) == ('executor."big.node".cpus', 4)


def test_load_config_ssh_as_text_or_table(tmp_path: Path) -> None:
    path = tmp_path / "Maestro.toml"
    path.write_text(
        '[executor.a]\ntype = "Local"\nssh = "me@login:2222"\n'
        '[executor.b]\ntype = "Slurm"\n'
        'ssh = { host = "hpc", user = "me", identity = "~/.ssh/k", jump = "gw", '
        'remote_workdir = "/scratch/me" }\n'
        '[executor.c]\ninherit = "b"\n'
    )
    executors = load_config(path).executors

    assert executors["a"].ssh == SshTarget(host="login", user="me", port=2222)
    b = executors["b"].ssh
    assert b is not None and (b.host, b.user, b.jump, b.remote_workdir) == (
        "hpc", "me", "gw", "/scratch/me"
    )  # fmt: skip
    assert b.identity == Path("~/.ssh/k").expanduser()
    assert executors["c"].ssh == b  # inherited like any other field


def test_load_config_ssh_errors_name_the_key(tmp_path: Path) -> None:
    issues = config_issues(
        tmp_path,
        '[executor.a]\ntype = "Local"\nssh = "not a host"\n'
        '[executor.b]\ntype = "Local"\nssh = { hots = "x", port = 0 }\n',
    )
    assert [(i.key, i.line) for i in issues] == [
        ("executor.a.ssh", 3),
        ("executor.b.ssh.hots", 6),
        ("executor.b.ssh.host", 6),
        ("executor.b.ssh.port", 6),
    ]
    assert 'did you mean "host"' in issues[1].message
    assert 'missing key "host"' in issues[2].message


def test_load_config_slurm_field_on_local_rejected(tmp_path: Path) -> None:
    issues = config_issues(
        tmp_path,
        """
        [executor.laptop]
        type = "Local"
        gpus = 4
        partition = "skylake"
        """,
    )

    assert [(i.key, i.line) for i in issues] == [
        ("executor.laptop.gpus", 3),
        ("executor.laptop.partition", 4),
    ]
    assert issues[0].message.startswith('"gpus" is only valid for type = "Slurm"')


def test_load_config_cpus_and_max_parallel_on_any_executor(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.laptop]
        type = "Local"
        cpus = 2
        max_parallel = 3

        [executor.cluster]
        type = "Slurm"
        cpus = 8
        max_parallel = 50
        """,
    )

    laptop, cluster = config.executors["laptop"], config.executors["cluster"]
    assert (laptop.cpus, laptop.max_parallel, laptop.slurm) == (2, 3, None)
    assert (cluster.cpus, cluster.max_parallel) == (8, 50)
    assert cluster.slurm is not None and cluster.slurm.cpus == 8


def test_load_config_slurm_field_on_inherited_local_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor.base]
        type = "Local"

        [executor.child]
        inherit = "base"
        gpus = 1
        """,
    )

    assert (issue.key, issue.line) == ("executor.child.gpus", 6)
    assert 'only valid for type = "Slurm"' in issue.message
    assert 'inherits type "Local" from "base"' in issue.message


def test_load_config_additional_options_forms(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.a]
        type = "Slurm"
        additional_options = [["qos", "high"], ["exclusive"]]

        [executor.b]
        type = "Slurm"
        additional_options = { qos = "high", exclusive = true }
        """,
    )

    for name in ("a", "b"):
        slurm = config.executors[name].slurm
        assert slurm is not None
        assert slurm.additional_options == (("qos", "high"), ("exclusive", None))


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ('[["--qos", "high"]]', "executor.x.additional_options[0]"),
        ('[["exclusive"], ["-N", "2"]]', "executor.x.additional_options[1]"),
        ('{ "--qos" = "high" }', "executor.x.additional_options.--qos"),
        ('{ "-q" = "high" }', "executor.x.additional_options.-q"),
    ],
)
def test_load_config_option_with_leading_dashes_rejected(
    tmp_path: Path, value: str, key: str
) -> None:
    issue = single_issue(tmp_path, f'[executor.x]\ntype = "Slurm"\nadditional_options = {value}\n')

    assert (issue.key, issue.line) == (key, 3)
    assert "write the option without leading dashes" in issue.message


def test_load_config_option_with_space_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path, '[executor.x]\ntype = "Slurm"\nadditional_options = [["qos high"]]\n'
    )

    assert issue.key == "executor.x.additional_options[0]"
    assert 'expected an sbatch long option name like "qos"' in issue.message


# -- inheritance ---------------------------------------------------------------------------


def test_load_config_inheritance_appends_and_replaces_over_three_levels(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.leaf]
        inherit = "middle"
        modules = ["leaf-mod"]
        additional_options = [["exclusive"]]
        memory = { type = "per_node", amount = 64000 }
        time = { minutes = 30 }

        [executor.root]
        type = "Slurm"
        modules = ["gcc/12"]
        cpus = 2
        memory = { type = "per_cpu", amount = 1000 }
        time = { days = 1, hours = 2 }
        additional_options = [["qos", "low"]]
        container = { Docker = "root:1" }
        partition = "short"

        [executor.middle]
        inherit = "root"
        modules = ["samtools"]
        additional_options = { constraint = "avx2" }
        cpus = 8
        container = { Podman = "middle:2" }
        staging_mode = "Hardlink"
        """,
    )

    leaf = config.executors["leaf"]
    assert leaf.type is ExecutorType.SLURM
    assert leaf.modules == ("gcc/12", "samtools", "leaf-mod")
    assert leaf.container == Container.podman("middle:2")
    assert leaf.staging_mode is StagingMode.HARDLINK
    assert leaf.effective_staging is StagingMode.COPY
    assert leaf.line == 1
    assert leaf.slurm == SlurmConfig(
        cpus=8,
        memory=MemoryConfig(Memory.PER_NODE, 64000),
        partition="short",
        time=TimeLimit(minutes=30),
        additional_options=(("qos", "low"), ("constraint", "avx2"), ("exclusive", None)),
    )
    middle = config.executors["middle"]
    assert middle.modules == ("gcc/12", "samtools")
    assert middle.slurm is not None
    assert middle.slurm.time == TimeLimit(days=1, hours=2)
    root = config.executors["root"]
    assert root.modules == ("gcc/12",)
    assert root.slurm is not None and root.slurm.cpus == 2


def test_load_config_inheritance_between_local_executors(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.base]
        type = "Local"
        modules = ["a"]
        [executor.child]
        inherit = "base"
        type = "Local"
        modules = ["b"]
        """,
    )

    child = config.executors["child"]
    assert child == ExecutorConfig(
        name="child", type=ExecutorType.LOCAL, modules=("a", "b"), slurm=None, line=4
    )


def test_load_config_unknown_parent_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor.slurm_base]
        type = "Slurm"
        [executor.child]
        inherit = "slurm_bsae"
        """,
    )

    assert (issue.key, issue.line) == ("executor.child.inherit", 4)
    assert 'inherits from "slurm_bsae", which is not defined' in issue.message
    assert 'did you mean "slurm_base"?' in issue.message
    assert '(defined executors: "slurm_base", "child")' in issue.message


def test_load_config_self_inherit_rejected(tmp_path: Path) -> None:
    issue = single_issue(tmp_path, '[executor.a]\ntype = "Local"\ninherit = "a"\n')

    assert (issue.key, issue.line) == ("executor.a.inherit", 3)
    assert "inherit cycle: a -> a" in issue.message


def test_load_config_three_cycle_reported_once(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor.entry]
        inherit = "b"
        [executor.a]
        inherit = "c"
        [executor.b]
        inherit = "a"
        [executor.c]
        inherit = "b"
        """,
    )

    assert (issue.key, issue.line) == ("executor.a.inherit", 4)
    assert "inherit cycle: a -> c -> b -> a" in issue.message


def test_load_config_cross_type_inheritance_rejected(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor.cluster]
        type = "Slurm"
        [executor.grandchild]
        inherit = "child"
        [executor.child]
        inherit = "cluster"
        type = "Local"
        """,
    )

    assert (issue.key, issue.line) == ("executor.child.type", 7)
    assert 'type "Local" differs from type "Slurm" of the inherited executor "cluster"' in (
        issue.message
    )


def test_load_config_child_without_type_takes_parents(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        '[executor.a]\ntype = "Local"\n[executor.b]\ninherit = "a"\nstaging_mode = "Copy"\n',
    )

    assert config.executors["b"].type is ExecutorType.LOCAL
    assert config.executors["b"].staging_mode is StagingMode.COPY
    assert config.executors["b"].slurm is None


def test_load_config_long_chain_resolves(tmp_path: Path) -> None:
    depth = 1500  # deeper than Python's recursion limit: resolution must be iterative
    parts = ['[executor.e0]\ntype = "Slurm"\nmodules = ["m0"]\n']
    parts += [
        f'[executor.e{i}]\ninherit = "e{i - 1}"\nmodules = ["m{i}"]\n' for i in range(1, depth)
    ]

    config = load_text(tmp_path, "".join(parts))

    assert config.executors[f"e{depth - 1}"].modules == tuple(f"m{i}" for i in range(depth))


def test_load_config_lines_ignore_keys_inside_strings_and_comments(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        # [executor.x] in a comment
        [args]
        text = \"\"\"
        cpus = 0
        [executor.x]
        \"\"\"
        literal = '[executor.x]'
        executor.x.type = "Slurm"
        executor.x.cpus = 0
        """,
    )

    assert (issue.key, issue.line) == ("args.executor", 8)


def test_load_config_dotted_keys_locate_executor_fields(tmp_path: Path) -> None:
    issue = single_issue(
        tmp_path,
        """
        [executor]
        x.type = "Slurm"
        x.time.hours = -1
        """,
    )

    assert (issue.key, issue.line) == ("executor.x.time.hours", 3)


# -- many problems at once -------------------------------------------------------------------


def test_load_config_reports_all_problems_at_once_with_lines(tmp_path: Path) -> None:
    issues = config_issues(
        tmp_path,
        """
        colour = "red"

        [args]
        sample = ["a"]

        [inputs]
        reads = 3

        [executor.local]
        type = "Local"
        gpus = 2

        [executor.cluster]
        type = "Slurm"
        cpus = true
        memory = { type = "per_cpu" }
        time = "2h"
        mail_type = ["END", "nope"]
        additional_options = [["--qos", "high"]]

        [executor.child]
        inherit = "clustr"
        staging_mode = "copy"
        """,
    )

    assert [(i.key, i.line) for i in issues] == [
        ("colour", 1),
        ("args.sample", 4),
        ("inputs.reads", 7),
        ("executor.local.gpus", 11),
        ("executor.cluster.cpus", 15),
        ("executor.cluster.memory.amount", 16),
        ("executor.cluster.time", 17),
        ("executor.cluster.mail_type[1]", 18),
        ("executor.cluster.additional_options[0]", 19),
        ("executor.child.inherit", 22),
        ("executor.child.staging_mode", 23),
    ]


# -- find_config_file ------------------------------------------------------------------------


def test_find_config_file_env_wins_and_is_relative_to_cwd(tmp_path: Path) -> None:
    write_config(tmp_path, "")
    other = write_config(tmp_path / "conf", "", name="other.toml")

    found = find_config_file(
        cwd=tmp_path, script_dir=tmp_path, env={"MAESTRO_CONFIG": "conf/other.toml"}
    )

    assert found == other


def test_find_config_file_cwd_before_script_dir(tmp_path: Path) -> None:
    here = write_config(tmp_path / "cwd", "")
    write_config(tmp_path / "script", "")

    found = find_config_file(cwd=tmp_path / "cwd", script_dir=tmp_path / "script", env={})

    assert found == here


def test_find_config_file_falls_back_to_script_dir(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    there = write_config(tmp_path / "script", "")

    found = find_config_file(cwd=tmp_path / "cwd", script_dir=tmp_path / "script", env={})

    assert found == there


def test_find_config_file_none_when_nothing_found(tmp_path: Path) -> None:
    assert find_config_file(cwd=tmp_path, script_dir=tmp_path, env={}) is None
    assert find_config_file(cwd=tmp_path, env={"MAESTRO_CONFIG": ""}) is None


def test_find_config_file_env_missing_file_raises(tmp_path: Path) -> None:
    write_config(tmp_path, "")

    with pytest.raises(ConfigError) as caught:
        find_config_file(cwd=tmp_path, env={"MAESTRO_CONFIG": "missing.toml"})

    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == (tmp_path / "missing.toml", None)
    assert "MAESTRO_CONFIG points to a missing file" in issue.message


def test_find_config_file_env_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_config_file(cwd=tmp_path, env={"MAESTRO_CONFIG": str(tmp_path)})

    assert "MAESTRO_CONFIG points to a directory" in caught.value.issues[0].message


def test_find_config_file_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = write_config(tmp_path, "", name="chosen.toml")
    monkeypatch.setenv("MAESTRO_CONFIG", str(chosen))

    assert find_config_file(cwd=tmp_path / "nowhere") == chosen


# -- model behaviour the loader relies on --------------------------------------------------


def test_executor_config_effective_staging_forced_to_copy_by_container(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        [executor.plain]
        type = "Local"
        staging_mode = "Symlink"
        [executor.boxed]
        type = "Local"
        staging_mode = "Symlink"
        container = { Apptainer = "tools.sif" }
        """,
    )

    assert config.executors["plain"].effective_staging is StagingMode.SYMLINK
    assert config.executors["boxed"].staging_mode is StagingMode.SYMLINK
    assert config.executors["boxed"].effective_staging is StagingMode.COPY


def test_config_package_exports_loader_and_model() -> None:
    assert set(config_pkg.__all__) >= {
        "find_config_file",
        "load_config",
        "parse_config",
        "ProjectConfig",
        "ExecutorConfig",
        "SlurmConfig",
        "TimeLimit",
    }
    for name in config_pkg.__all__:
        assert hasattr(config_pkg, name)


def test_load_config_refuses_sbatch_values_that_would_need_quoting(tmp_path: Path) -> None:
    """Such values go onto #SBATCH lines, which Slurm splits itself; they are caught at load."""
    issues = config_issues(
        tmp_path,
        '[executor.s]\ntype = "Slurm"\npartition = "gpu nodes"\n'
        'additional_options = [["qos", "high$x"], ["exclusive"]]\n',
    )

    assert [(i.key, i.line) for i in issues] == [
        ("executor.s.partition", 3),
        ("executor.s.additional_options[0]", 4),
    ]
    assert all("spaces, quotes or shell characters" in i.message for i in issues)


def test_load_config_reads_poll_interval_for_slurm_only(tmp_path: Path) -> None:
    path = tmp_path / "Maestro.toml"
    path.write_text('[executor.s]\ntype = "Slurm"\npoll_interval = 30\n')
    slurm = load_config(path).executors["s"].slurm
    assert slurm is not None and slurm.poll_interval == 30

    issue = single_issue(tmp_path, '[executor.l]\ntype = "Local"\npoll_interval = 30\n')
    assert issue.key == "executor.l.poll_interval"
    assert 'only valid for type = "Slurm"' in issue.message

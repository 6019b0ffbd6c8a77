from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ENVIRONMENT_THAT_MOVES_FILES
from weightwarden.agent.config import (
    Config,
    ConfigError,
    check_config,
    default_config,
    default_config_text,
    load_config,
)
from weightwarden.agent.located.problem import Problem

REAL_EUID = os.geteuid()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, an unprivileged user, and none of the variables that move files around."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ENVIRONMENT_THAT_MOVES_FILES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return home


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def located(path: Path) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.message) for problem in check_config(path)]


# ------------------------------------------------------------------------------------------------ defaults


def test_defaults_when_there_is_no_config_file(home: Path) -> None:
    config = load_config()
    assert config.source is None
    assert config.agent.mode == "auto"
    assert config.agent.data_dir == ""
    assert config.agent.log_level == "info"
    assert config.agent.name == ""
    assert config.inventory.roots == (
        f"{home}/models",
        f"{home}/.cache/huggingface",
        f"{home}/.ollama/models",
        f"{home}/.cache/torch",
        f"{home}/.cache/lm-studio",
        f"{home}/.lmstudio/models",
    )
    assert config.inventory.extra_roots == ()
    assert config.inventory.scan_on_start is True
    assert config.inventory.exclude_dirs == (".git", "node_modules", "__pycache__", ".venv", ".tox")
    assert config.watch.extra_roots == ()
    assert config.watch.settle_seconds == 1.0
    assert (config.scan.window_bytes, config.scan.tail_bytes, config.scan.hash_block_bytes) == (
        1048576,
        65536,
        1048576,
    )
    assert config.scan.hash_sparse_files is False
    assert config.scan.workers == 4
    assert (config.store.batch_size, config.store.flush_seconds) == (256, 0.5)
    assert config == default_config()


def test_default_watch_roots(home: Path, tmp_path: Path) -> None:
    assert load_config().watch.roots == (
        f"{home}/Downloads",
        f"{home}/Desktop",
        f"{home}/Documents",
        f"{tmp_path}/tmp",
        "/var/tmp",
        "/dev/shm",
    )


def test_resolved_helpers_for_a_user(home: Path) -> None:
    config = load_config()
    assert config.mode == "user"
    assert config.data_dir == f"{home}/.local/share/weightwarden"
    assert config.database_path == f"{home}/.local/share/weightwarden/weightwarden.db"
    assert config.agent_name == socket.gethostname()


def test_root_gets_system_mode_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    config = load_config()
    assert config.mode == "system"
    assert config.database_path == "/var/lib/weightwarden/weightwarden.db"


def test_config_forces_mode_and_names_the_agent(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[agent]\nmode = "system"\nname = "gpu-box-7"\n'))
    assert config.mode == "system"
    assert config.data_dir == "/var/lib/weightwarden"
    assert config.agent_name == "gpu-box-7"


def test_requested_mode_wins_over_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[agent]\nmode = "system"\n'), mode="user")
    assert config.mode == "user"


def test_unknown_requested_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'auto'"):
        load_config(mode="auto")


# ------------------------------------------------------------------------------------- finding the file


def test_default_file_is_read_when_present(home: Path) -> None:
    path = home / ".config" / "weightwarden" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[scan]\nworkers = 9\n")
    config = load_config()
    assert config.source == str(path)
    assert config.scan.workers == 9


def test_weightwarden_config_env_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, "[scan]\nworkers = 7\n", "elsewhere.toml")
    monkeypatch.setenv("WEIGHTWARDEN_CONFIG", str(path))
    assert load_config().scan.workers == 7


def test_missing_file_named_by_env_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEIGHTWARDEN_CONFIG", str(tmp_path / "typo.toml"))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert caught.value.problems == [
        Problem(str(tmp_path / "typo.toml"), None, "cannot read config file: No such file or directory")
    ]


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"{missing}: cannot read config file: No such file or directory"


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    assert located(tmp_path / "missing.toml") == [
        (None, "cannot read config file: No such file or directory")
    ]


def test_directory_as_config_is_one_problem(tmp_path: Path) -> None:
    assert located(tmp_path) == [(None, "cannot read config file: is a directory")]


def test_fifo_as_config_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    assert located(fifo) == [(None, "cannot read config file: not a regular file")]


@pytest.mark.skipif(REAL_EUID == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "[scan]\n")
    path.chmod(0)
    assert located(path) == [(None, "cannot read config file: Permission denied")]


# ------------------------------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("scan", "window_bytes", '"big"', "[scan] window_bytes must be an integer, got string"),
        ("scan", "workers", "true", "[scan] workers must be an integer, got boolean"),
        ("scan", "workers", "4.0", "[scan] workers must be an integer, got float"),
        ("scan", "hash_sparse_files", "1", "[scan] hash_sparse_files must be a boolean, got integer"),
        ("watch", "settle_seconds", '"1s"', "[watch] settle_seconds must be a number, got string"),
        ("watch", "settle_seconds", "false", "[watch] settle_seconds must be a number, got boolean"),
        ("store", "flush_seconds", "1979-05-27", "[store] flush_seconds must be a number, got date"),
        ("agent", "mode", "3", "[agent] mode must be a string, got integer"),
        ("agent", "data_dir", "[]", "[agent] data_dir must be a string, got array"),
        ("inventory", "roots", '"/srv/models"', "[inventory] roots must be an array of strings, got string"),
        ("inventory", "scan_on_start", "{}", "[inventory] scan_on_start must be a boolean, got table"),
        ("watch", "extra_roots", '["/a", 1]', "[watch] extra_roots[1] must be a string, got integer"),
    ],
)
def test_wrong_type_is_reported_at_its_line(
    tmp_path: Path, section: str, key: str, value: str, message: str
) -> None:
    path = write(tmp_path, f"# settings\n[{section}]\n{key} = {value}\n")
    assert located(path) == [(3, message)]


def test_integer_is_accepted_for_a_float_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[watch]\nsettle_seconds = 2\n"))
    assert config.watch.settle_seconds == 2.0
    assert isinstance(config.watch.settle_seconds, float)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    assert located(write(tmp_path, "\nscan = 5\n")) == [(2, "[scan] must be a table, got integer")]


# ------------------------------------------------------------------------------------------------ ranges


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[scan]\nworkers = 0", "[scan] workers must be between 1 and 64, got 0"),
        ("[scan]\nworkers = 65", "[scan] workers must be between 1 and 64, got 65"),
        ("[scan]\nwindow_bytes = 4095", "[scan] window_bytes must be between 4096 and 67108864, got 4095"),
        ("[scan]\ntail_bytes = -1", "[scan] tail_bytes must be between 0 and 16777216, got -1"),
        (
            "[scan]\nhash_block_bytes = 65535",
            "[scan] hash_block_bytes must be between 65536 and 16777216, got 65535",
        ),
        ("[watch]\nsettle_seconds = 0.01", "[watch] settle_seconds must be between 0.05 and 60, got 0.01"),
        ("[store]\nflush_seconds = nan", "[store] flush_seconds must be between 0.01 and 60, got nan"),
        ("[store]\nbatch_size = 100001", "[store] batch_size must be between 1 and 100000, got 100001"),
    ],
)
def test_value_out_of_range(tmp_path: Path, line: str, message: str) -> None:
    assert located(write(tmp_path, line + "\n")) == [(2, message)]


def test_range_bounds_are_inclusive(tmp_path: Path) -> None:
    text = "[scan]\nwindow_bytes = 4096\ntail_bytes = 0\nhash_block_bytes = 16777216\nworkers = 64\n"
    config = load_config(write(tmp_path, text))
    assert (config.scan.window_bytes, config.scan.tail_bytes) == (4096, 0)
    assert (config.scan.hash_block_bytes, config.scan.workers) == (16777216, 64)


def test_value_not_among_choices_gets_a_suggestion(tmp_path: Path) -> None:
    assert located(write(tmp_path, '[agent]\nmode = "sytem"\nlog_level = "verbose"\n')) == [
        (2, "[agent] mode must be one of 'auto', 'user', 'system', got 'sytem' (did you mean 'system'?)"),
        (3, "[agent] log_level must be one of 'debug', 'info', 'warning', 'error', got 'verbose'"),
    ]


# ------------------------------------------------------------------------------------------ unknown names


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    assert located(write(tmp_path, "[scan]\nworkers = 2\nwindow_byte = 4096\n")) == [
        (
            3,
            "unknown key 'window_byte' in [scan] (did you mean 'window_bytes'?); known keys: "
            "window_bytes, tail_bytes, hash_block_bytes, hash_sparse_files, workers",
        )
    ]


def test_unknown_key_without_close_match(tmp_path: Path) -> None:
    assert located(write(tmp_path, "[store]\ncolour = 1\n")) == [
        (2, "unknown key 'colour' in [store]; known keys: batch_size, flush_seconds")
    ]


# The foundation's sections first, in file order; later sections (sensors, gui, forwarding...) follow.
KNOWN_SECTIONS = ", ".join(f"[{f.name}]" for f in dataclasses.fields(Config) if f.metadata.get("section"))


def test_known_sections_start_with_the_foundation_ones() -> None:
    assert KNOWN_SECTIONS.startswith("[agent], [inventory], [watch], [scan], [store]")


def test_unknown_section(tmp_path: Path) -> None:
    assert located(write(tmp_path, "[agent]\n\n[sacn]\nworkers = 2\n")) == [
        (
            3,
            "unknown section [sacn] (did you mean [scan]?); known sections: " + KNOWN_SECTIONS,
        )
    ]


def test_key_outside_any_section(tmp_path: Path) -> None:
    assert located(write(tmp_path, "workers = 2\n")) == [
        (
            1,
            "unknown top-level key 'workers' (did you mean to put it under [scan]?); "
            "settings go in sections: " + KNOWN_SECTIONS,
        )
    ]


# --------------------------------------------------------------------------- many problems, line numbers


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[agent]\nlog_level = "loud"\n\n[scan]\nworkers = 0\n# a comment\nhash_sparse_files = "yes"\n',
    )
    problems = check_config(path)
    assert [problem.line for problem in problems] == [2, 5, 7]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == problems
    assert str(caught.value).splitlines() == [
        f"{path}:2: [agent] log_level must be one of 'debug', 'info', 'warning', 'error', got 'loud'",
        f"{path}:5: [scan] workers must be between 1 and 64, got 0",
        f"{path}:7: [scan] hash_sparse_files must be a boolean, got string",
    ]


def test_lines_survive_multi_line_strings_and_arrays(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[inventory]\n"
        "roots = [\n"
        '  "/srv/models",  # a comment with a ] in it\n'
        '  "/data/[weights]",\n'
        "]\n"
        'notes = """\n'
        "[scan]\n"
        "workers = 0\n"
        '"""\n'
        "scan_on_start = 3\n",
    )
    assert [line for line, _ in located(path)] == [6, 10]


def test_quoted_and_dotted_keys_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, '[scan]\n"workers" = 0\n\nstore.batch_size = 0\nwatch.settle_seconds = 0\n')
    assert [line for line, _ in located(path)] == [2, 4, 5]


def test_top_level_dotted_and_inline_tables_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, 'scan.workers = 0\n\nagent = {mode = "x", log_level = "info"}\n')
    assert located(path) == [
        (1, "[scan] workers must be between 1 and 64, got 0"),
        (3, "[agent] mode must be one of 'auto', 'user', 'system', got 'x'"),
    ]


def test_subtable_of_a_section_is_an_unknown_key(tmp_path: Path) -> None:
    assert [line for line, _ in located(write(tmp_path, "[scan]\nworkers = 2\n[scan.extra]\na = 1\n"))] == [3]


def test_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[scan]\nworkers = 2\nwindow_bytes = = 3\n[agent]\nmode = 1\n")
    assert located(path) == [(3, "invalid TOML: Invalid value (column 16)")]


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    assert located(write(tmp_path, "[inventory]\nroots = [\n")) == [
        (2, "invalid TOML: Invalid value (at end of file)")
    ]


def test_non_utf8_bytes_report_their_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[agent]\n# caf\xe9\nname = 'x'\n")
    assert located(path) == [(2, "not valid UTF-8: byte 0xe9 at column 6")]


def test_problem_text_with_and_without_line() -> None:
    assert str(Problem("/etc/ww.toml", 4, "bad")) == "/etc/ww.toml:4: bad"
    assert str(Problem("/etc/ww.toml", None, "bad")) == "/etc/ww.toml: bad"


# -------------------------------------------------------------------------------------------------- paths


def test_paths_expand_tilde_and_variables(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("MODEL_STORE", "/srv/store")
    path = write(
        home,
        '[agent]\ndata_dir = "~/ww-data/"\n'
        '[inventory]\nextra_roots = ["$MODEL_STORE/llm", "${MODEL_STORE}/../vision"]\n',
    )
    config = load_config(path)
    assert config.agent.data_dir == f"{home}/ww-data"
    assert config.database_path == f"{home}/ww-data/weightwarden.db"
    assert config.inventory.extra_roots == ("/srv/store/llm", "/srv/vision")


def test_relative_paths_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ndata_dir = "state"\n[watch]\nroots = ["/ok", "$NOT_SET_ANYWHERE/x"]\n')
    assert located(path) == [
        (2, "[agent] data_dir must be an absolute path after expanding ~ and $VARS, got 'state'"),
        (
            4,
            "[watch] roots[1] must be an absolute path after expanding ~ and $VARS, "
            "got '$NOT_SET_ANYWHERE/x'",
        ),
    ]


def test_exclude_dirs_must_be_names(tmp_path: Path) -> None:
    assert located(write(tmp_path, '[inventory]\nexclude_dirs = ["build", "~/cache"]\n')) == [
        (2, "[inventory] exclude_dirs[1] must be a directory name without '/', got '~/cache'")
    ]


def test_config_data_dir_wins_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(tmp_path / "from-env"))
    assert load_config().data_dir == f"{tmp_path}/from-env"
    configured = load_config(write(tmp_path, f'[agent]\ndata_dir = "{tmp_path}/from-file"\n'))
    assert configured.data_dir == f"{tmp_path}/from-file"


# -------------------------------------------------------------------------------------------------- roots


def test_protected_roots_are_existing_deduplicated_roots(home: Path, tmp_path: Path) -> None:
    (home / "models").mkdir()
    (tmp_path / "srv").mkdir()
    extra = f'"{tmp_path}/srv", "{tmp_path}/missing", "~/models/", "{tmp_path}/srv"'
    path = write(tmp_path, f"[inventory]\nextra_roots = [{extra}]\n")
    assert load_config(path).protected_roots == [f"{home}/models", f"{tmp_path}/srv"]


def test_setting_roots_replaces_the_defaults(home: Path, tmp_path: Path) -> None:
    (home / "models").mkdir()
    (tmp_path / "only").mkdir()
    config = load_config(write(tmp_path, f'[inventory]\nroots = ["{tmp_path}/only"]\n'))
    assert config.inventory.roots == (f"{tmp_path}/only",)
    assert config.protected_roots == [f"{tmp_path}/only"]


def test_hf_home_becomes_a_protected_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert load_config().protected_roots == [f"{tmp_path}/hf"]


def test_watch_roots_drop_missing_duplicate_and_nested_roots(home: Path, tmp_path: Path) -> None:
    for directory in ("models", "Downloads", "Downloads/sub"):
        (home / directory).mkdir()
    (tmp_path / "scratch").mkdir()
    path = write(
        tmp_path,
        f'[watch]\nroots = ["~/Downloads", "~/Downloads/sub", "{tmp_path}/gone"]\n'
        f'extra_roots = ["{tmp_path}/scratch", "~/Downloads", "~"]\n',
    )
    config = load_config(path)
    assert config.protected_roots == [f"{home}/models"]
    assert config.watch_roots == [f"{tmp_path}/scratch", str(home)]


def test_watch_roots_keep_protected_roots_outside_watched_dirs(home: Path, tmp_path: Path) -> None:
    (home / "models").mkdir()
    (home / "Downloads").mkdir()
    config = load_config(write(tmp_path, '[watch]\nroots = ["~/Downloads"]\n'))
    assert config.watch_roots == [f"{home}/models", f"{home}/Downloads"]


# ----------------------------------------------------------------------------------------- default text


def test_default_config_text_loads_as_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, default_config_text()))
    assert dataclasses.replace(config, source=None) == default_config()


def test_uncommented_default_config_text_loads_as_the_defaults(tmp_path: Path) -> None:
    # The live assignments prove each printed default is valid and equal to the real one.
    text = default_config_text(commented=False)
    assert "\nworkers = 4\n" in text
    config = load_config(write(tmp_path, text))
    assert dataclasses.replace(config, source=None) == default_config()


def test_default_config_text_lists_every_key() -> None:
    text = default_config_text()
    for section in dataclasses.fields(Config):
        if not section.metadata.get("section"):
            continue
        assert f"\n[{section.name}]\n" in text
        for key in dataclasses.fields(getattr(default_config(), section.name)):
            assert f"\n# {key.name} = " in text, key.name
    assert "# (integer from 4096 to 67108864)\n# window_bytes = 1048576\n" in text


# ------------------------------------------------------------------------------------ [detect] overrides


def test_detect_overrides_are_unset_unless_the_file_sets_them(tmp_path: Path) -> None:
    assert (default_config().detect.egress_ratio, default_config().detect.bulk_models,
            default_config().detect.bulk_window_seconds) == (None, None, None)
    config = load_config(write(tmp_path, "[detect]\negress_ratio = 0.8\nbulk_models = 3\nbulk_window_seconds = 60\n"))
    assert (config.detect.egress_ratio, config.detect.bulk_models, config.detect.bulk_window_seconds) == (0.8, 3, 60.0)
    assert isinstance(config.detect.bulk_window_seconds, float)
    bad = write(tmp_path, '[detect]\negress_ratio = 0.001\nbulk_models = 2.5\nbulk_window_seconds = "1h"\n')
    assert [(p.line, p.message) for p in check_config(bad)] == [
        (2, "[detect] egress_ratio must be between 0.01 and 10, got 0.001"),
        (3, "[detect] bulk_models must be an integer, got float"),
        (4, "[detect] bulk_window_seconds must be a number, got string"),
    ]


def test_default_text_shows_unset_overrides_as_comments_that_name_the_rules_value() -> None:
    for text in (default_config_text(), default_config_text(commented=False)):
        assert "# egress_ratio = 0.5\n" in text and "\negress_ratio" not in text
        assert "each\n# egress rule's own ratio applies" in text
        assert "(number from 0.01 to 10; unset by default)" in text

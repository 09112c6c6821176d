"""The command line: every subcommand is listed and documents itself with examples."""

from __future__ import annotations

import pytest

from evalkit.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_list_protocols_includes_shipped_files(capsys):
    assert main(["list", "protocols"]) == 0
    assert "shapes" in capsys.readouterr().out.split()


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generators: [{name: oracle}]\nprotocols: [shapes]\nbatch_sise: 2\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "did you mean 'batch_size'" in err and "Traceback" not in err


def test_run_flags_become_config_fields(tmp_path, monkeypatch):
    from evalkit.commands import run as run_command

    seen = {}
    monkeypatch.setattr(run_command, "execute", lambda config, out, resume, progress=True: seen.update(config=config))
    monkeypatch.setattr(run_command, "read_results", lambda path: [])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generators: [{name: oracle}]\nprotocols: [shapes]\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--skip-unreadable", "--allow-random-weights"]) == 0
    assert seen["config"].skip_unreadable is True and seen["config"].allow_random_weights is True

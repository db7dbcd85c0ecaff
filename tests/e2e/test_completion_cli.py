"""`kestra-trio --install-completion`: the script lands where each shell looks, and bash completes with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

KT = str(Path(sys.executable).with_name("kestra-trio"))


def install(home: Path, *args: str, shell_env: str = "/bin/bash") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "SHELL": shell_env}
    for name in ("ZSH", "ZSH_CUSTOM"):  # an oh-my-zsh on the machine would change where zsh's file goes
        env.pop(name, None)
    return subprocess.run([KT, "--install-completion", *args], capture_output=True, text=True, env=env, timeout=60)


def complete_in_bash(script: Path, words: str) -> list[str]:
    """What bash offers for `words<TAB>`, with the installed script loaded."""
    code = (
        f'source "{script}"; read -ra COMP_WORDS <<< "$WORDS"; COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); '
        'COMPREPLY=(); _kestra_trio; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "--norc", "-c", code], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "WORDS": words})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_is_installed_and_completes_commands_and_options(tmp_path: Path) -> None:
    result = install(tmp_path)  # the shell is detected from $SHELL
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".local/share/bash-completion/completions/kestra-trio"
    assert f"Completion script installed to {script}" in result.stdout
    assert f'. "{script}"' in (tmp_path / ".bashrc").read_text()
    assert complete_in_bash(script, "kestra-trio exec") == ["execution"]
    assert complete_in_bash(script, "kestra-trio execution l") == ["logs", "list"]
    assert complete_in_bash(script, "kestra-trio execution logs abcd --fo") == ["--follow"]
    assert complete_in_bash(script, "kestra-trio run wf.yaml --max") == ["--max-parallel"]
    again = install(tmp_path)  # idempotent: .bashrc gets the line once
    assert again.returncode == 0 and (tmp_path / ".bashrc").read_text().count(f'. "{script}"') == 1


@pytest.mark.parametrize(
    ("shell", "folder", "names", "startup"),
    [
        # cyclopts names zsh's file _cyclopts_<prog> (older releases: _<prog>, same folder)
        ("zsh", ".zsh/completions", ("_cyclopts_kestra-trio", "_kestra-trio"), ".zshrc"),
        ("fish", ".config/fish/completions", ("kestra-trio.fish",), None),
    ],
)
def test_zsh_and_fish_scripts_go_where_those_shells_load_them(
    tmp_path: Path, shell: str, folder: str, names: tuple[str, ...], startup: str | None
) -> None:
    result = install(tmp_path, "--shell", shell)
    assert result.returncode == 0, result.stderr
    script = Path(result.stdout.split("Completion script installed to ", 1)[1].split("\n", 1)[0])
    assert script.parent == tmp_path / folder and script.name in names
    text = script.read_text()
    assert "kestra-trio" in text and "execution" in text and "--max-parallel" in text
    if startup is not None:  # zsh: the folder is put on fpath; fish loads its folder by itself
        assert f"fpath=({script.parent} $fpath)" in (tmp_path / startup).read_text()

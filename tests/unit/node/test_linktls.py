"""LinkTls: what an operator reads when a node cannot load its link certificates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lb.certs import ensure_certs
from lb.errors import ConfigError
from lb.node.linktls import LinkTls


def test_missing_certificates_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        LinkTls(tmp_path / "certs", "a")
    [(key, message)] = caught.value.errors
    assert key == "farm.link_certs"
    assert f"lb certs {tmp_path / 'certs'} --farm FARM --nodes a" in message


def test_an_unreadable_key_names_the_file_and_asks_for_read_access(tmp_path: Path) -> None:
    """The files exist (made by `lb certs` as another user, e.g. root for a container
    whose lb runs as uid 10001): making them again is not the remedy."""
    certs = tmp_path / "certs"
    ensure_certs(certs, "t", ["a"])
    os.chmod(certs / "a.key", 0)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lb.errors import ConfigError\n"
        "from lb.node.linktls import LinkTls\n"
        "try:\n"
        "    LinkTls(Path(sys.argv[1]), 'a')\n"
        "except ConfigError as exc:\n"
        "    print(exc.errors[0][1])\n"
    )
    command = [sys.executable, "-c", probe, str(certs)]
    if os.geteuid() == 0:  # root reads anything: ask without the capabilities that allow it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a file cannot be made unreadable")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", drop, "--inh-caps=-all", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    message = done.stdout.strip()
    assert "Permission denied" in message, (message, done.stderr[-800:])
    assert str(certs / "a.key") in message, message
    assert "readable by" in message, message
    assert "lb certs" not in message, message
